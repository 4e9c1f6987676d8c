"""Wazzup v3: webhook (secret in the URL path, JSON `messages[]`/`statuses[]`) and `POST /v3/message`.

Wazzup signs nothing, so the webhook URL carries a random secret compared in constant time. Sends carry
`crmMessageId` = our idempotency key: a retry after a timeout or a crash reuses it, and Wazzup's
`REPEATED_CRM_MESSAGE_ID` answer means the message already went out.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from salesbot.kit.logging import get_logger
from salesbot.messaging.base import (
    DownloadedMedia,
    EchoMessage,
    InboundEvent,
    InboundMessage,
    MalformedWebhookError,
    Media,
    MediaLimits,
    PermanentProviderError,
    ProviderNotConfiguredError,
    RateLimitedError,
    RetryableProviderError,
    SendResult,
    StatusUpdate,
    WebhookRejectedError,
    WebhookRequest,
    WindowClosedError,
    clean_text,
    error_token,
    server_error,
    transport_error,
    valid_id,
)
from salesbot.messaging.download import fetch_limited
from salesbot.models import Channel, DeliveryStatus
from salesbot.settings import WazzupSettings

log = get_logger(__name__)

# Wazzup documents no Retry-After; its budget is 500 requests per 5 s.
RATE_LIMIT_BACKOFF_SECONDS = 5.0
WINDOW_CLOSED_CODES = frozenset({error_token("24_HOURS_EXCEEDED")})
ALREADY_SENT_CODES = frozenset({error_token("REPEATED_CRM_MESSAGE_ID")})
# Wazzup refuses a repeated crmMessageId only this long; after it the same key sends the message again.
DUPLICATE_WINDOW = timedelta(seconds=60)
MEDIA_TYPES = frozenset({"image", "audio", "video", "document"})
# `type` of a WABA template message (the echo of a closed-window template send).
TEMPLATE_TYPE = "wapi_template"
STATUS_MAP = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "error": DeliveryStatus.FAILED,
}
# Personal WhatsApp chats keep the bare number as chat id; other chat types are prefixed so replies can be routed.
DEFAULT_CHAT_TYPE = "whatsapp"


def encode_chat_id(chat_type: str, chat_id: str) -> str:
    return chat_id if chat_type == DEFAULT_CHAT_TYPE else f"{chat_type}:{chat_id}"


def decode_chat_id(value: str) -> tuple[str, str]:
    chat_type, sep, chat_id = value.partition(":")
    return (chat_type, chat_id) if sep else (DEFAULT_CHAT_TYPE, value)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(value: object) -> str | None:
    """A non-empty string field (numbers accepted as text); NUL characters, which PostgreSQL refuses, removed."""
    if isinstance(value, str) and value:
        return clean_text(value) or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


class WazzupProvider:
    """The Wazzup v3 adapter (one channel: `WAZZUP_CHANNEL_ID`)."""

    def __init__(self, settings: WazzupSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http

    @property
    def channel(self) -> Channel:
        return Channel.WAZZUP

    @property
    def max_text_length(self) -> int:
        return self._settings.max_text_length

    @property
    def window_applies(self) -> bool:
        # Only WhatsApp Business API channels have the 24 h customer-service window.
        return self._settings.transport == "wapi"

    @property
    def captions_media(self) -> bool:
        # Wazzup refuses `text` together with `contentUri`.
        return False

    @property
    def has_window_template(self) -> bool:
        return bool(self._settings.window_template_id)

    @property
    def duplicate_window(self) -> timedelta:
        return DUPLICATE_WINDOW

    @property
    def finds_sent(self) -> bool:
        # Wazzup has no message lookup: a send is reconciled by its echo or status webhook instead.
        return False

    # --- webhook ----------------------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        expected = self._settings.webhook_secret.get_secret_value()
        given = request.path_params.get("secret", "")
        # Without a configured secret the route does not exist; a wrong secret looks the same (404).
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejectedError("Not Found", status_code=404)

    def parse(self, request: WebhookRequest) -> list[InboundEvent]:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than the parser's recursion limit ("[[[[..." in a 1 MiB body).
            raise MalformedWebhookError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise MalformedWebhookError("body must be a JSON object")
        messages = body.get("messages", [])
        statuses = body.get("statuses", [])
        if not isinstance(messages, list) or not isinstance(statuses, list):
            raise MalformedWebhookError("`messages` and `statuses` must be arrays")
        events: list[InboundEvent] = []
        for item in messages:
            event = self._message(item)
            if event is not None:
                events.append(event)
        for item in statuses:
            status = self._status(item)
            if status is not None:
                events.append(status)
        # `{"test": true}`, channelsUpdates, templateStatus...: acknowledged, nothing to do.
        return events

    def _message(self, item: object) -> InboundMessage | EchoMessage | None:
        if not isinstance(item, dict):
            log.warning("wazzup.item_skipped", reason="not an object")
            return None
        message_id = _str(item.get("messageId"))
        chat_id = _str(item.get("chatId"))
        if message_id is None or chat_id is None:
            log.warning("wazzup.item_skipped", reason="messageId or chatId missing")
            return None
        channel_id = _str(item.get("channelId"))
        if self._settings.channel_id and channel_id and channel_id != self._settings.channel_id:
            # Another channel of the same Wazzup account: the bot cannot answer from it.
            log.info("wazzup.foreign_channel_ignored", message_id=message_id)
            return None
        if item.get("isEdited") is True or item.get("isDeleted") is True:
            # Edits and deletions arrive as `messages` entries of an already stored message.
            log.info("wazzup.edit_ignored", message_id=message_id)
            return None
        chat = encode_chat_id(_str(item.get("chatType")) or DEFAULT_CHAT_TYPE, chat_id)
        if not valid_id(message_id) or not valid_id(chat):
            log.warning("wazzup.item_skipped", reason="messageId or chatId too long")
            return None
        content_type = _str(item.get("type")) or "unknown"
        raw_text = item.get("text")
        text = clean_text(raw_text) if isinstance(raw_text, str) else ""
        content_uri = _str(item.get("contentUri"))
        media = (Media(url=content_uri, content_type=content_type),) if content_uri else ()
        sent_at = _parse_time(item.get("dateTime"))
        if item.get("isEcho") is True:
            author = _str(item.get("authorName"))
            key = _str(item.get("crmMessageId"))
            return EchoMessage(
                channel=Channel.WAZZUP,
                provider_message_id=message_id,
                chat_id=chat,
                text=text,
                content_type=content_type[:32],
                media=media,
                author_name=author,
                sent_at=sent_at,
                is_template=content_type == TEMPLATE_TYPE,
                idempotency_key=key if key is not None and valid_id(key) else None,
            )
        contact = item.get("contact")
        name = _str(contact.get("name")) if isinstance(contact, dict) else None
        return InboundMessage(
            channel=Channel.WAZZUP,
            provider_message_id=message_id,
            chat_id=chat,
            text=text,
            content_type=content_type[:32],
            media=media,
            # For WhatsApp Wazzup often puts the number itself in `name`: that is not a name.
            contact_name=None if name is None or name == chat_id else name[:200],
            sent_at=sent_at,
        )

    def _status(self, item: object) -> StatusUpdate | None:
        if not isinstance(item, dict):
            return None
        message_id = _str(item.get("messageId"))
        status = STATUS_MAP.get(str(item.get("status")))
        if message_id is None or status is None or not valid_id(message_id):
            # `edited` and unknown states do not change delivery.
            return None
        error = item.get("error")
        code = _str(error.get("error")) if isinstance(error, dict) else None
        description = _str(error.get("description")) if isinstance(error, dict) else None
        if status is DeliveryStatus.FAILED and code is None:
            code = "error"
        return StatusUpdate(
            channel=Channel.WAZZUP,
            provider_message_id=message_id,
            status=status,
            error_code=code,
            error_description=description,
        )

    # --- sending ----------------------------------------------------------------------------------------------

    async def send_text(self, chat_id: str, text: str, *, idempotency_key: str) -> SendResult:
        return await self._send(chat_id, {"text": text}, idempotency_key)

    async def send_media(
        self,
        chat_id: str,
        url: str,
        *,
        idempotency_key: str,
        caption: str | None = None,
        filename: str | None = None,
    ) -> SendResult:
        # Wazzup's `text` and `contentUri` are mutually exclusive: a caption goes as its own message first.
        if caption:
            await self._send(chat_id, {"text": caption}, f"{idempotency_key}:caption")
        return await self._send(chat_id, {"contentUri": url}, idempotency_key)

    async def download_media(self, media: Media, *, limits: MediaLimits) -> DownloadedMedia:
        # Wazzup's `contentUri` is a plain link to its file store: no credentials.
        return await fetch_limited(self._http, media.url, limits=limits)

    async def send_template(self, chat_id: str, *, idempotency_key: str) -> SendResult:
        if not self._settings.window_template_id:
            raise ProviderNotConfiguredError("window_closed", "no WAZZUP_WINDOW_TEMPLATE_ID configured")
        return await self._send(
            chat_id, {"templateId": self._settings.window_template_id, "templateValues": []}, idempotency_key
        )

    async def find_sent(
        self, chat_id: str, text: str | None, *, since: datetime, exclude: Collection[str]
    ) -> str | None:
        # No lookup route in v3: inside DUPLICATE_WINDOW a resend with the same crmMessageId is refused instead.
        return None

    async def _send(self, chat_id: str, content: dict[str, Any], idempotency_key: str) -> SendResult:
        api_key = self._settings.api_key.get_secret_value()
        if not api_key or not self._settings.channel_id:
            raise ProviderNotConfiguredError("not_configured", "WAZZUP_API_KEY and WAZZUP_CHANNEL_ID are required")
        chat_type, address = decode_chat_id(chat_id)
        payload = {
            "channelId": self._settings.channel_id,
            "chatType": chat_type,
            "chatId": address,
            **content,
            "crmMessageId": idempotency_key,
            # Keep the chat "unanswered" in Wazzup so managers still see the customer waiting for a human.
            "clearUnanswered": False,
        }
        try:
            response = await self._http.post(
                f"{self._settings.api_url.rstrip('/')}/message",
                json=payload,
                headers={"Authorization": f"Bearer {api_key}"},
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        return self._result(response)

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.is_success:
            return SendResult(provider_message_id=_str(body.get("messageId")))
        code = _str(body.get("error")) or str(response.status_code)
        description = _str(body.get("description")) or response.reason_phrase
        token = error_token(code)
        if token in ALREADY_SENT_CODES:
            return SendResult(provider_message_id=None, already_sent=True)
        if response.status_code == 429:
            raise RateLimitedError(code, description, retry_after=RATE_LIMIT_BACKOFF_SECONDS)
        if response.status_code >= 500:
            raise server_error(response.status_code, code, description)
        if token in WINDOW_CLOSED_CODES:
            raise WindowClosedError(code, description)
        raise PermanentProviderError(code, description)

    # --- operations: `salesbot check` and `salesbot webhooks register` ---------------------------------------

    async def _account_call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        api_key = self._settings.api_key.get_secret_value()
        if not api_key:
            raise ProviderNotConfiguredError("not_configured", "WAZZUP_API_KEY is not set")
        try:
            response = await self._http.request(
                method,
                f"{self._settings.api_url.rstrip('/')}{path}",
                json=payload,
                headers={"Authorization": f"Bearer {api_key}"},
            )
        except httpx.HTTPError as exc:
            raise RetryableProviderError("network", type(exc).__name__) from exc
        if not response.is_success:
            self._result(response)  # raises the mapped error
        try:
            return response.json() if response.content else None
        except ValueError:
            return None

    async def check_credentials(self) -> str:
        """A harmless call (`GET /channels`): the key works and WAZZUP_CHANNEL_ID is one of its active channels."""
        channels = await self._account_call("GET", "/channels")
        for channel in channels if isinstance(channels, list) else []:
            if isinstance(channel, dict) and channel.get("channelId") == self._settings.channel_id:
                state = str(channel.get("state") or "unknown")
                # `GET /channels` and the channelsUpdates webhook spell some states differently.
                if state.lower() != "active":
                    raise PermanentProviderError("channel_state", f"channel {self._settings.channel_id} is {state}")
                return f"channel {self._settings.channel_id} ({channel.get('transport', '?')}) is active"
        raise PermanentProviderError("channel_unknown", f"no channel {self._settings.channel_id!r} on this API key")

    async def registered_webhook(self) -> str | None:
        """The webhook address the Wazzup account has now (one per account, shared with any CRM integration)."""
        current = await self._account_call("GET", "/webhooks")
        uri = current.get("webhooksUri") if isinstance(current, dict) else None
        return str(uri) if uri else None

    async def register_webhook(self, url: str) -> None:
        """Point the account's webhook at `url` (Wazzup POSTs `{"test": true}` to it first and needs a 200)."""
        await self._account_call(
            "PATCH",
            "/webhooks",
            {
                "webhooksUri": url,
                # contactsAndDealsCreation would make Wazzup expect CRM entities in our answers.
                "subscriptions": {
                    "messagesAndStatuses": True,
                    "contactsAndDealsCreation": False,
                    "channelsUpdates": True,
                    "templateStatus": True,
                },
            },
        )
