"""The console provider: a real channel for development, the web simulator and `salesbot chat`.

Inbound: `POST /webhooks/console` with JSON `{"phone": "+15550100", "text": "...", "name": "optional",
"id": "optional client message id", "media": "a reference from `store_media`", "media_type": "audio"}` (only
while `settings.console_provider_enabled`; `text` may be empty with `media`). Outbound: each sent message is
appended to a Redis stream per chat (and stays in the `messages` table like any other channel);
`read_replies` / `wait_for_replies` read it from a cursor, so a terminal or a web page can poll or long-poll.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from salesbot.kit.hashing import short_hash
from salesbot.kit.phones import normalize_phone
from salesbot.messaging.base import (
    DownloadedMedia,
    InboundEvent,
    InboundMessage,
    MalformedWebhookError,
    Media,
    MediaLimits,
    MediaRefusedError,
    MediaUnavailableError,
    ProviderNotConfiguredError,
    SendResult,
    WebhookRejectedError,
    WebhookRequest,
    clean_text,
)
from salesbot.models import Channel

MAX_TEXT_LENGTH = 4000
MAX_INBOUND_TEXT_LENGTH = 10_000
STREAM_MAXLEN = 500
RETENTION_SECONDS = 7 * 24 * 3600
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
# A file the simulator uploaded: kept in Redis (like the replies, for a week) under `console:<sha256>`.
MEDIA_PREFIX = "console:"
_MEDIA_REF = re.compile(r"^console:[0-9a-f]{64}$")

# Appends the reply to the chat's stream once per idempotency key; returns the provider message id.
_SEND_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return {existing, 1} end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'message_id', ARGV[1], 'text', ARGV[2], 'sent_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
return {ARGV[1], 0}
"""


def _stream_key(chat_id: str) -> str:
    # Keys never carry a phone number in clear.
    return f"sb:console:replies:{short_hash(chat_id)}"


@dataclass(frozen=True)
class ConsoleReply:
    # Stream entry id; pass it back as `after` to read only newer replies.
    cursor: str
    message_id: str
    text: str
    sent_at: datetime


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _reply(entry_id: bytes | str, fields: dict[bytes | str, bytes | str]) -> ConsoleReply:
    values = {_decode(k): _decode(v) for k, v in fields.items()}
    return ConsoleReply(
        cursor=_decode(entry_id),
        message_id=values.get("message_id", ""),
        text=values.get("text", ""),
        sent_at=datetime.fromisoformat(values["sent_at"]) if "sent_at" in values else datetime.now(UTC),
    )


async def read_replies(redis: Redis, phone: str, *, after: str | None = None, limit: int = 100) -> list[ConsoleReply]:
    """The bot's messages to `phone`, oldest first, newer than cursor `after` (all retained ones when None)."""
    start = f"({after}" if after else "-"
    entries = await redis.xrange(_stream_key(normalize_phone(phone)), min=start, max="+", count=limit)
    return [_reply(entry_id, fields) for entry_id, fields in entries]


async def wait_for_replies(
    redis: Redis, phone: str, *, after: str | None = None, timeout_seconds: float = 20.0
) -> list[ConsoleReply]:
    """Like `read_replies`, but blocks up to `timeout_seconds` until at least one newer reply exists."""
    key = _stream_key(normalize_phone(phone))
    result = await redis.xread({key: after or "0-0"}, count=100, block=max(1, int(timeout_seconds * 1000)))
    replies: list[ConsoleReply] = []
    for _stream, entries in result or []:
        replies.extend(_reply(entry_id, fields) for entry_id, fields in entries)
    return replies


def _media_key(reference: str) -> str:
    return f"sb:console:media:{reference.removeprefix(MEDIA_PREFIX)}"


async def store_media(redis: Redis, data: bytes, *, content_type: str, filename: str | None = None) -> str:
    """Keep an uploaded file for the worker to "download"; returns the reference to post with the message."""
    reference = MEDIA_PREFIX + hashlib.sha256(data).hexdigest()
    fields = {"data": data, "content_type": content_type, "filename": filename or ""}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(_media_key(reference), mapping=fields)
        pipe.expire(_media_key(reference), RETENTION_SECONDS)
        await pipe.execute()
    return reference


class ConsoleProvider:
    """Development channel: inbound JSON from the simulator or terminal, outbound into a Redis stream."""

    def __init__(self, redis: Redis, *, enabled: bool) -> None:
        self._redis = redis
        self._enabled = enabled

    @property
    def channel(self) -> Channel:
        return Channel.CONSOLE

    @property
    def max_text_length(self) -> int:
        return MAX_TEXT_LENGTH

    @property
    def window_applies(self) -> bool:
        return False

    @property
    def captions_media(self) -> bool:
        return True

    @property
    def has_window_template(self) -> bool:
        return False

    @property
    def duplicate_window(self) -> timedelta:
        # The send script remembers an idempotency key as long as the stream keeps its replies.
        return timedelta(seconds=RETENTION_SECONDS)

    @property
    def finds_sent(self) -> bool:
        return False

    def verify(self, request: WebhookRequest) -> None:
        # The console is local tooling: it exists only where it is switched on (off in production by default).
        if not self._enabled:
            raise WebhookRejectedError("Not Found", status_code=404)

    def parse(self, request: WebhookRequest) -> list[InboundEvent]:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than the parser's recursion limit ("[[[[..." in a 1 MiB body).
            raise MalformedWebhookError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise MalformedWebhookError("body must be a JSON object")
        phone, text, name, client_id = body.get("phone"), body.get("text", ""), body.get("name"), body.get("id")
        media_ref, media_type = body.get("media"), body.get("media_type")
        if not isinstance(phone, str):
            raise MalformedWebhookError("`phone` (string) is required")
        try:
            chat_id = normalize_phone(phone)
        except ValueError as exc:
            raise MalformedWebhookError(str(exc)) from exc
        if media_ref is not None and (not isinstance(media_ref, str) or not _MEDIA_REF.match(media_ref)):
            raise MalformedWebhookError("`media` must be a reference returned by the simulator's upload")
        if media_type is not None and media_type not in ("audio", "image", "document"):
            raise MalformedWebhookError("`media_type` must be audio, image or document")
        if not isinstance(text, str) or (not text.strip() and media_ref is None):
            raise MalformedWebhookError("`text` (non-empty string) is required")
        if len(text) > MAX_INBOUND_TEXT_LENGTH:
            raise MalformedWebhookError(f"`text` is longer than {MAX_INBOUND_TEXT_LENGTH} characters")
        if name is not None and not isinstance(name, str):
            raise MalformedWebhookError("`name` must be a string")
        if client_id is not None and (not isinstance(client_id, str) or not _CLIENT_ID.match(client_id)):
            raise MalformedWebhookError("`id` must be 1-100 characters of letters, digits, _ . : -")
        return [
            InboundMessage(
                channel=Channel.CONSOLE,
                # A client id makes resubmits idempotent; without one every POST is a new message.
                provider_message_id=client_id or f"console-in-{uuid.uuid4().hex}",
                chat_id=chat_id,
                text=clean_text(text),
                content_type=(media_type or "document") if media_ref else "text",
                media=(Media(url=media_ref),) if media_ref else (),
                contact_name=(clean_text(name).strip()[:200] or None) if name else None,
                sent_at=datetime.now(UTC),
            )
        ]

    async def send_text(self, chat_id: str, text: str, *, idempotency_key: str) -> SendResult:
        message_id = f"console-out-{uuid.uuid4().hex}"
        result = await self._redis.eval(  # type: ignore[misc]
            _SEND_ONCE,
            2,
            _stream_key(chat_id),
            f"sb:console:sent:{short_hash(idempotency_key, length=32)}",
            message_id,
            text,
            datetime.now(UTC).isoformat(),
            str(STREAM_MAXLEN),
            str(RETENTION_SECONDS),
        )
        sent_id, already = _decode(result[0]), int(result[1])
        return SendResult(provider_message_id=sent_id, already_sent=bool(already))

    async def send_media(
        self,
        chat_id: str,
        url: str,
        *,
        idempotency_key: str,
        caption: str | None = None,
        filename: str | None = None,
    ) -> SendResult:
        text = f"{caption}\n{url}" if caption else url
        return await self.send_text(chat_id, text, idempotency_key=idempotency_key)

    async def download_media(self, media: Media, *, limits: MediaLimits) -> DownloadedMedia:
        if not _MEDIA_REF.match(media.url):
            raise MediaUnavailableError("not a console media reference")
        stored = await self._redis.hgetall(_media_key(media.url))  # type: ignore[misc]
        if not stored:
            raise MediaUnavailableError("the uploaded file expired")
        data = stored[b"data"]
        content_type = _decode(stored[b"content_type"])
        if not limits.allows(content_type):
            raise MediaRefusedError("type_refused", content_type, content_type=content_type)
        if len(data) > limits.max_bytes:
            raise MediaRefusedError("too_large", f"{len(data)} bytes", content_type=content_type)
        return DownloadedMedia(bytes(data), content_type, _decode(stored[b"filename"]) or None)

    async def send_template(self, chat_id: str, *, idempotency_key: str) -> SendResult:
        raise ProviderNotConfiguredError("window_closed", "the console channel has no templates")

    async def find_sent(
        self, chat_id: str, text: str | None, *, since: datetime, exclude: Collection[str]
    ) -> str | None:
        return None
