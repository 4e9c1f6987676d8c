"""`salesbot check` and `salesbot webhooks register` against the real app, database, Redis and worker, with the
provider account APIs and the LLM faked on local ports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from redis import Redis

from salesbot import queues
from salesbot.cli import main
from salesbot.queues import heartbeat_key
from salesbot.settings import Settings, get_settings
from tests.conftest import TEST_SECRETS_ENV
from tests.fakes.llm import FakeLLM
from tests.fakes.provider_accounts import FakeAccounts
from tests.live import LiveStack

WAZZUP_KEY = "33a817cbc1504bd5885574d8f0290cd3"
CHANNEL = "b96a999e-06f5-4cac-8413-ba999993f981"
SECRET = "wz-hook-3f9c2b7e4d1a48c6a2e5b0d7c9f1e8a4"
TWILIO_SID = "AC00000000000000000000000000000000"
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
META_TOKEN = "EAAG-system-user-token-0123456789"
META_NUMBER = "106540352242922"


@dataclass
class Deployment:
    stack: LiveStack
    accounts: FakeAccounts
    llm: FakeLLM
    monkeypatch: pytest.MonkeyPatch

    def run(self, *argv: str) -> int:
        get_settings.cache_clear()
        try:
            return main(list(argv))
        finally:
            get_settings.cache_clear()


@pytest.fixture
def deployment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    accounts = FakeAccounts(
        WAZZUP_KEY,
        TWILIO_SID,
        TWILIO_TOKEN,
        channels=[{"channelId": CHANNEL, "transport": "whatsapp", "plainId": "79990000000", "state": "active"}],
        meta_token=META_TOKEN,
        meta_phone_number_id=META_NUMBER,
    )
    with accounts.in_thread(), FakeLLM().in_thread() as llm:
        env = {
            "SALESBOT_ENV": "development",
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "WAZZUP_API_URL": accounts.wazzup_url,
            "WAZZUP_API_KEY": WAZZUP_KEY,
            "WAZZUP_CHANNEL_ID": CHANNEL,
            "WAZZUP_WEBHOOK_SECRET": SECRET,
            "TWILIO_API_URL": accounts.twilio_url,
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
            "META_API_URL": accounts.meta_url,
            "META_ACCESS_TOKEN": META_TOKEN,
            "META_PHONE_NUMBER_ID": META_NUMBER,
            "META_APP_SECRET": "meta-app-secret-0123456789abcdef",
            "META_VERIFY_TOKEN": "meta-verify-token-0123456789",
            "LLM_MODEL": "sales-llm",
            "LLM_BASE_URL": llm.base_url,
            "LLM_API_KEY": "sk-test-0123456789",
            "EMBEDDING_MODEL": "offline",
            **TEST_SECRETS_ENV,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PUBLIC_BASE_URL", "http://placeholder")
        stack = LiveStack(Settings(), with_worker=True)
        monkeypatch.setenv("PUBLIC_BASE_URL", stack.url)
        stack.settings = Settings()
        stack.start()
        try:
            wait_for_worker(settings.redis_url)
            yield Deployment(stack, accounts, llm, monkeypatch)
        finally:
            stack.stop()


def wait_for_worker(redis_url: str, timeout: float = 60) -> None:
    """The API serves before the worker (in the same stack) has loaded its models and written its heartbeats."""
    client = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        keys = [heartbeat_key(queue) for queue in queues.BY_NAME.values()]
        while client.exists(*keys) < len(keys):
            if time.monotonic() > deadline:
                raise AssertionError(f"no heartbeat of every worker queue after {timeout:.0f} s")
            time.sleep(0.1)
    finally:
        client.close()


ITEMS = (
    "mode",
    "services",
    "database",
    "pgvector",
    "redis",
    "worker",
    "inbox_spool",
    "playbook",
    "llm sales-llm",
    "llm",
    "embedder",
    "wazzup webhook",
    "wazzup",
    "twilio webhook",
    "twilio",
    "meta webhook",
    "meta",
    "public url",
    "providers",
    "alerts",
)


def lines(output: str) -> dict[str, str]:
    """`salesbot check` lines by item name: {"database": "  ok     database  connected", ...}."""
    found = {}
    for line in output.splitlines():
        mark, _, rest = line.strip().partition("  ")
        if mark.strip() in ("ok", "ERROR", "warn"):
            name = next(name for name in ITEMS if rest.strip().startswith(name + "  ") or rest.strip() == name)
            found[name] = line
    return found


def test_check_reports_every_item_ok_against_working_services(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deployment.run("webhooks", "register") == 0
    capsys.readouterr()

    assert deployment.run("check") == 0
    output = capsys.readouterr().out
    found = lines(output)
    for name in set(ITEMS) - {"services", "llm", "providers"}:
        assert found[name].split()[0] == "ok", output
    assert "is active" in found["wazzup"]
    assert "account AC00000000000000000000000000000000 is active" in found["twilio"]
    assert "Falcon Office Systems" in found["meta"]
    assert "quality GREEN" in found["meta"]
    assert "answered in" in found["llm sales-llm"]
    assert deployment.llm.answered_by("sales-llm") == 1
    assert SECRET not in output  # the webhook secret is shown masked


def test_check_names_each_broken_item_with_a_hint_and_fails(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.accounts.channels[0]["state"] = "qr"
    deployment.accounts.webhook_uri = "https://crm.example.com/wazzup"
    deployment.monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a-revoked-token-0123456789")
    deployment.monkeypatch.setenv("META_ACCESS_TOKEN", "EAAG-expired-token-0123456789")
    deployment.llm.default_behaviour = "500"
    deployment.monkeypatch.setenv("PLAYBOOK_PATH", "/nonexistent/playbook.yaml")

    assert deployment.run("check") == 1
    output = capsys.readouterr().out
    found = lines(output)
    assert found["wazzup"].startswith("  ERROR")
    assert "is qr" in found["wazzup"]
    assert found["twilio"].startswith("  ERROR")
    assert "20003: Authenticate" in found["twilio"]
    assert found["meta"].startswith("  ERROR")
    assert "190: Invalid OAuth access token" in found["meta"]
    assert found["llm sales-llm"].startswith("  ERROR")
    assert found["wazzup webhook"].startswith("  ERROR")
    assert "another address" in found["wazzup webhook"]
    assert found["playbook"].startswith("  ERROR")
    for hint in (
        "hint: check WAZZUP_API_KEY and WAZZUP_CHANNEL_ID",
        "hint: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        "hint: check LLM_BASE_URL, LLM_API_KEY",
        "hint: run `salesbot webhooks register`",
        "hint: fix the YAML at PLAYBOOK_PATH",
    ):
        assert hint in output
    assert found["database"].split()[0] == "ok"


def test_webhooks_register_never_overwrites_another_integration_without_force(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.accounts.webhook_uri = "https://crm.example.com/wazzup"
    assert deployment.run("webhooks", "register") == 1
    assert deployment.accounts.webhook_uri == "https://crm.example.com/wazzup"
    assert not [r for r in deployment.accounts.requests if r[0] == "PATCH"]

    assert deployment.run("webhooks", "register", "--force") == 0
    # Wazzup POSTed {"test": true} to the live app, which answered 200, before accepting the address.
    assert deployment.accounts.webhook_uri == f"{deployment.stack.url}/webhooks/wazzup/{SECRET}"
    [patch] = [r for r in deployment.accounts.requests if r[0] == "PATCH"]
    assert patch[2]["subscriptions"] == {
        "messagesAndStatuses": True,
        "contactsAndDealsCreation": False,
        "channelsUpdates": True,
        "templateStatus": True,
    }
    output = capsys.readouterr().out
    assert f"{deployment.stack.url}/webhooks/twilio/status" in output
    assert f"callback URL: {deployment.stack.url}/webhooks/meta" in output
    assert SECRET not in output


def test_readyz_reports_llm_and_providers_without_gating_readiness(deployment: Deployment) -> None:
    deployment.llm.default_behaviour = "500"
    response = httpx.get(f"{deployment.stack.url}/readyz", timeout=30)
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["playbook"]["ok"] is True
    assert body["advisory"]["llm sales-llm"]["ok"] is False
    assert body["advisory"]["wazzup"]["ok"] is True
    assert body["advisory"]["twilio"]["ok"] is True
    assert body["advisory"]["meta"]["ok"] is True


def test_check_without_reachable_services_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SALESBOT_DATA_DIR", str(tmp_path_factory.mktemp("nothing-running")))
    monkeypatch.setenv("EMBEDDING_MODEL", "offline")
    get_settings.cache_clear()
    try:
        assert main(["check"]) == 1
    finally:
        get_settings.cache_clear()
    output = capsys.readouterr().out
    found = lines(output)
    assert found["services"].startswith("  ERROR")
    assert "no `salesbot dev` running" in found["services"]
    assert found["playbook"].split()[0] == "ok"
    assert found["llm"].split()[0] == "ok"  # the offline responder needs nothing
