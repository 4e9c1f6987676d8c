from __future__ import annotations

import pytest
from pydantic import ValidationError

from salesbot.settings import Settings

PRODUCTION_OK = {
    "salesbot_env": "production",
    "database_url": "postgresql+asyncpg://salesbot@db/salesbot",
    "redis_url": "redis://redis:6379/0",
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


def test_flat_environment_names_fill_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
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
