"""Alerts POSTed as JSON to `ALERT_WEBHOOK_URL`, signed so the receiver can verify them.

Headers: `X-Salesbot-Signature: sha256=<hex HMAC-SHA256(ALERT_WEBHOOK_SECRET, raw body)>`, `X-Salesbot-Event`
(the alert kind) and `X-Salesbot-Delivery` (the alert's event key: the same on every retry, so a receiver can
drop repeats). The body of an alert is identical on every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import httpx

from salesbot.alerts.base import AlertMessage, PermanentAlertError, RetryableAlertError
from salesbot.models import AlertChannel
from salesbot.settings import AlertSettings

SIGNATURE_HEADER = "X-Salesbot-Signature"
EVENT_HEADER = "X-Salesbot-Event"
DELIVERY_HEADER = "X-Salesbot-Delivery"
# Answers worth another attempt; any other 4xx is the receiver refusing the alert.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(message: AlertMessage) -> bytes:
    return json.dumps(
        {
            "id": message.event_key,
            "alert_id": message.alert_id,
            "kind": message.kind.value,
            "title": message.title,
            "conversation_id": message.conversation_id,
            "customer": message.customer,
            "channel": message.channel,
            "excerpt": message.excerpt,
            "link": message.link,
            "created_at": message.created_at.isoformat(),
            "text": message.text(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


class WebhookSender:
    def __init__(self, settings: AlertSettings, http: httpx.AsyncClient) -> None:
        self._url = settings.alert_webhook_url
        self._secret = settings.alert_webhook_secret.get_secret_value()
        self._http = http

    @property
    def channel(self) -> AlertChannel:
        return AlertChannel.WEBHOOK

    async def check(self) -> str:
        # Any request would be an alert to the receiver: only the configuration is checked.
        if not self._secret:
            raise PermanentAlertError("ALERT_WEBHOOK_SECRET is empty: receivers cannot verify the signature")
        return f"POST {httpx.URL(self._url).host} (signed)"

    async def send(self, message: AlertMessage, *, attempted_before: datetime | None) -> None:
        body = body_of(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, body),
            EVENT_HEADER: message.kind.value,
            DELIVERY_HEADER: message.event_key,
        }
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryableAlertError(f"webhook: {type(exc).__name__}") from None
        if response.is_success:
            return
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
            retry_after = response.headers.get("retry-after", "")
            raise RetryableAlertError(
                f"webhook {response.status_code}",
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )
        raise PermanentAlertError(f"webhook {response.status_code}")
