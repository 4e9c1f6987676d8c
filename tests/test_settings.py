from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from salesbot.settings import SHIPPED_DEFAULTS, Settings

PRODUCTION_OK = {
    "salesbot_env": "production",
    "database_url": "postgresql+asyncpg://salesbot@db/salesbot",
    "redis_url": "redis://redis:6379/0",
    "conversation": {"playbook_path": "/etc/salesbot/playbook.yaml"},
}
STRONG = "k7Qp2vX9mZr4TnB8wLs6"


def test_defaults_match_design(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.wazzup.api_url == "https://api.wazzup24.com/v3"
    assert settings.twilio.api_url == "https://api.twilio.com"
    assert settings.conversation.debounce_seconds == 3
    assert settings.conversation.debounce_max_seconds == 15
    assert settings.conversation.human_takeover_hours == 12
    assert settings.llm.model == "offline"
    assert "STOP" in settings.conversation.opt_out_keywords
    assert settings.console_provider_enabled


def real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", STRONG)
    monkeypatch.setenv("SECRET_KEY", STRONG + "x")
    monkeypatch.setenv("ADMIN_PASSWORD", STRONG + "y")


def test_flat_environment_names_fill_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    real_secrets(monkeypatch)
    monkeypatch.setenv("SALESBOT_ENV", "development")
    monkeypatch.setenv("WAZZUP_API_KEY", "abc123")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("LLM_FALLBACK_MODELS", "gpt-4o-mini, llama3 ,")
    monkeypatch.setenv("OPT_OUT_KEYWORDS", "STOP,ХВАТИТ")
    monkeypatch.setenv("DEBOUNCE_SECONDS", "1.5")
    settings = Settings()
    assert settings.wazzup.api_key.get_secret_value() == "abc123"
    assert settings.twilio.account_sid == "AC123"
    assert settings.llm.fallback_models == ["gpt-4o-mini", "llama3"]
    assert settings.conversation.opt_out_keywords == ["STOP", "ХВАТИТ"]
    assert settings.conversation.debounce_seconds == 1.5


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "super-secret-token-value")
    assert "super-secret-token-value" not in repr(Settings())


def test_debounce_cap_below_window_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBOUNCE_SECONDS", "10")
    monkeypatch.setenv("DEBOUNCE_MAX_SECONDS", "5")
    with pytest.raises(ValidationError, match="DEBOUNCE_MAX_SECONDS"):
        Settings()


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Settings(**PRODUCTION_OK)
    message = str(excinfo.value)
    assert "API_TOKEN is a placeholder" in message
    assert "SECRET_KEY is a placeholder" in message
    assert "ADMIN_PASSWORD is a placeholder" in message


def test_production_refuses_a_placeholder_provider_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", STRONG)
    monkeypatch.setenv("SECRET_KEY", STRONG + "x")
    monkeypatch.setenv("ADMIN_PASSWORD", STRONG + "y")
    monkeypatch.setenv("WAZZUP_API_KEY", "33a817cbc1504bd5885574d8f0290cd3")
    monkeypatch.setenv("WAZZUP_WEBHOOK_SECRET", "change-me")
    with pytest.raises(ValidationError, match="WAZZUP_WEBHOOK_SECRET is a placeholder"):
        Settings(**PRODUCTION_OK)


def test_production_requires_external_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", STRONG)
    monkeypatch.setenv("SECRET_KEY", STRONG + "x")
    monkeypatch.setenv("ADMIN_PASSWORD", STRONG + "y")
    with pytest.raises(ValidationError, match="DATABASE_URL is required"):
        Settings(salesbot_env="production")


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", STRONG)
    monkeypatch.setenv("SECRET_KEY", STRONG + "x")
    monkeypatch.setenv("ADMIN_PASSWORD", STRONG + "y")
    settings = Settings(**PRODUCTION_OK)
    assert settings.env == "production"
    assert not settings.console_provider_enabled


@pytest.mark.parametrize(
    "credential",
    [("WAZZUP_API_KEY", "33a817cbc1504bd5885574d8f0290cd3"), ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef")],
)
def test_provider_credentials_without_an_explicit_mode_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, credential: tuple[str, str]
) -> None:
    real_secrets(monkeypatch)
    monkeypatch.setenv(*credential)
    with pytest.raises(ValidationError, match=f"{credential[0]} set but SALESBOT_ENV is not"):
        Settings()
    monkeypatch.setenv("SALESBOT_ENV", "development")
    assert Settings().env == "development"


def test_without_provider_credentials_an_unset_mode_is_development() -> None:
    settings = Settings()
    assert settings.salesbot_env is None
    assert settings.env == "development"
    assert settings.console_provider_enabled


@pytest.mark.parametrize("mode", ["development", "production"])
def test_provider_credentials_refuse_the_shipped_placeholders_in_any_mode(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("SALESBOT_ENV", mode)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC0123456789abcdef")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "f0e1d2c3b4a5968778695a4b3c2d1e0f")
    with pytest.raises(ValidationError) as excinfo:
        Settings(**({**PRODUCTION_OK, "salesbot_env": mode}))
    assert "placeholder API_TOKEN, ADMIN_PASSWORD, SECRET_KEY" in str(excinfo.value)


def test_the_example_env_file_ships_only_placeholders_that_are_refused() -> None:
    example = dict(
        line.split("=", 1)
        for line in (Path(__file__).parents[1] / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("API_TOKEN", "ADMIN_PASSWORD", "SECRET_KEY"):
        assert example[name] in SHIPPED_DEFAULTS, name


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"conversation": {}}, "PLAYBOOK_PATH is required in production"),
        ({"console_enabled": True}, "CONSOLE_ENABLED must be off in production"),
        ({"llm": {"model": "gpt-4o-mini"}}, "LLM_MODEL=gpt-4o-mini needs LLM_API_KEY or LLM_BASE_URL"),
    ],
)
def test_production_refuses_demo_and_development_conveniences(
    monkeypatch: pytest.MonkeyPatch, update: dict[str, object], problem: str
) -> None:
    real_secrets(monkeypatch)
    with pytest.raises(ValidationError, match=problem):
        Settings(**{**PRODUCTION_OK, **update})


def test_production_with_an_llm_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    real_secrets(monkeypatch)
    settings = Settings(**{**PRODUCTION_OK, "llm": {"model": "gpt-4o-mini", "api_key": "sk-" + STRONG}})
    assert settings.llm.model == "gpt-4o-mini"


def test_turn_budget_is_below_the_job_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.turn_budget_seconds, defaults.worker_job_timeout_seconds) == (25, 45)
    # Unset with a short job timeout: half of it, so the turn still ends before arq cancels it.
    monkeypatch.setenv("WORKER_JOB_TIMEOUT_SECONDS", "20")
    assert Settings().turn_budget_seconds == 10
    monkeypatch.setenv("TURN_BUDGET_SECONDS", "12")
    assert Settings().turn_budget_seconds == 12
    monkeypatch.setenv("TURN_BUDGET_SECONDS", "20")
    with pytest.raises(ValidationError, match="TURN_BUDGET_SECONDS must be below WORKER_JOB_TIMEOUT_SECONDS"):
        Settings()
