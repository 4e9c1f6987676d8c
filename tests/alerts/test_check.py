"""`salesbot check` probes the alert channels without sending an alert."""

from __future__ import annotations

import httpx

from salesbot.health.configuration import alert_items
from salesbot.settings import AlertSettings, Settings
from tests.fakes.alert_receivers import SMTP_PASSWORD, SMTP_USER, smtp_server, webhook_receiver
from tests.fakes.telegram import BOT_TOKEN, CHAT_ID, telegram_server


def with_alerts(settings: Settings, **values: object) -> Settings:
    return settings.model_copy(update={"alerts": AlertSettings(**values)})


async def test_no_channel_is_fine_and_says_so(settings: Settings) -> None:
    async with httpx.AsyncClient() as http:
        [item] = await alert_items(with_alerts(settings), http)
    assert (item.name, item.ok, item.required) == ("alerts", True, False)


async def test_telegram_token_is_probed_with_get_me(settings: Settings) -> None:
    async with telegram_server() as api, httpx.AsyncClient() as http:
        good = with_alerts(
            settings, telegram_api_url=api.base_url, telegram_bot_token=BOT_TOKEN, telegram_chat_id=CHAT_ID
        )
        [ok] = await alert_items(good, http)
        bad = with_alerts(
            settings, telegram_api_url=api.base_url, telegram_bot_token="1:wrong", telegram_chat_id=CHAT_ID
        )
        [refused] = await alert_items(bad, http)
    assert (ok.name, ok.ok, ok.detail) == ("alerts.telegram", True, f"bot @salesbot_alerts_bot, chat {CHAT_ID}")
    assert not refused.ok
    assert refused.detail.endswith("telegram 401: Unauthorized")
    assert "1:wrong" not in refused.detail
    # A probe is never an alert.
    assert api.delivered == []


async def test_smtp_login_is_probed_without_sending_mail(settings: Settings) -> None:
    with smtp_server() as (mail, port):
        common = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_user": SMTP_USER, "smtp_starttls": False}
        async with httpx.AsyncClient() as http:
            [ok] = await alert_items(
                with_alerts(
                    settings, **common, smtp_password=SMTP_PASSWORD, smtp_from=SMTP_USER, smtp_to="a@b.example"
                ),
                http,
            )
    assert ok.ok, ok.detail
    assert ok.detail == f"127.0.0.1:{port} to 1 recipient(s)"
    assert mail.messages == []


async def test_a_webhook_without_a_secret_is_reported(settings: Settings) -> None:
    async with webhook_receiver() as receiver, httpx.AsyncClient() as http:
        [unsigned] = await alert_items(with_alerts(settings, alert_webhook_url=receiver.url), http)
        [signed] = await alert_items(
            with_alerts(settings, alert_webhook_url=receiver.url, alert_webhook_secret="s3cret-value"), http
        )
    assert not unsigned.ok
    assert signed.ok
    assert receiver.received == []
