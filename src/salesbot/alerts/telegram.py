"""Alerts to a Telegram chat through the Bot API's `sendMessage` (`TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`).

The Bot API answers `{"ok": true, "result": Message}`, or `{"ok": false, "error_code", "description"}` with
`parameters.retry_after` on 429. It has no idempotency key: a send whose answer was lost may be repeated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from salesbot.alerts.base import AlertMessage, PermanentAlertError, RetryableAlertError
from salesbot.models import AlertChannel
from salesbot.settings import AlertSettings

# Telegram's limit for a message text.
MAX_TEXT = 4096


class TelegramSender:
    def __init__(self, settings: AlertSettings, http: httpx.AsyncClient) -> None:
        self._base = settings.telegram_api_url.rstrip("/")
        self._token = settings.telegram_bot_token.get_secret_value()
        self._chat_id = settings.telegram_chat_id
        self._http = http

    @property
    def channel(self) -> AlertChannel:
        return AlertChannel.TELEGRAM

    async def send(self, message: AlertMessage, *, attempted_before: datetime | None) -> None:
        payload = {
            "chat_id": self._chat_id,
            "text": message.text()[:MAX_TEXT],
            "link_preview_options": {"is_disabled": True},
        }
        try:
            response = await self._http.post(f"{self._base}/bot{self._token}/sendMessage", json=payload)
        except httpx.HTTPError as exc:
            # The exception's text carries the URL, and so the token: only its type leaves.
            raise RetryableAlertError(f"telegram: {type(exc).__name__}") from None
        body = _json(response)
        if response.status_code == 200 and body.get("ok") is True:
            return
        description = str(body.get("description") or response.reason_phrase)[:300]
        if response.status_code == 429:
            parameters = body.get("parameters")
            retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
            raise RetryableAlertError(
                f"telegram 429: {description}",
                retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
            )
        if response.status_code >= 500:
            raise RetryableAlertError(f"telegram {response.status_code}: {description}")
        raise PermanentAlertError(f"telegram {response.status_code}: {description}")

    async def check(self) -> str:
        """`getMe`: the token is valid (the chat is only proven by the first alert)."""
        try:
            response = await self._http.get(f"{self._base}/bot{self._token}/getMe")
        except httpx.HTTPError as exc:
            raise RetryableAlertError(f"telegram: {type(exc).__name__}") from None
        body = _json(response)
        result = body.get("result")
        if response.status_code != 200 or not isinstance(result, dict):
            raise PermanentAlertError(f"telegram {response.status_code}: {body.get('description', '')}"[:300])
        return f"bot @{result.get('username', '?')}, chat {self._chat_id}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
