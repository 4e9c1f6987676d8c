"""Meta WhatsApp Cloud API: webhooks signed with `X-Hub-Signature-256`; sends to `/{version}/{number id}/messages`.

Meta proves a webhook with `sha256=<hex HMAC-SHA256(app secret, raw body)>` and proves our endpoint with a GET
handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge` echoed). One POST carries `entry[].changes[]`:
field `messages` (customer messages and the statuses of ours), `smb_message_echoes` (what the business wrote from
the WhatsApp Business app on a coexistence number: a manager's reply). Webhook parsing lives in `meta_webhook`.

Meta has no idempotency key and no way to list sent messages, so a send whose answer was lost cannot be looked
up (`find_sent` is None, `duplicate_window` is 0). Every send carries our idempotency key as
`biz_opaque_callback_data`, which Meta returns in each status webhook: the status reconciles the row even
without the provider id. Sends are paced per number (throughput) and per customer (pair rate limit) in Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import mimetypes
import posixpath
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.kit import token_bucket
from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.messaging import meta_webhook
from salesbot.messaging.base import (
    DownloadedMedia,
    InboundEvent,
    MalformedWebhookError,
    Media,
    MediaLimits,
    MediaRefusedError,
    MediaUnavailableError,
    OptedOutError,
    PermanentProviderError,
    ProviderNotConfiguredError,
    RateLimitedError,
    RetryableProviderError,
    SendResult,
    WebhookRejectedError,
    WebhookRequest,
    WindowClosedError,
    transport_error,
)
from salesbot.messaging.download import fetch_limited
from salesbot.models import Channel
from salesbot.settings import MetaSettings

log = get_logger(__name__)

SIGNATURE_HEADER = "x-hub-signature-256"
SIGNATURE_PREFIX = "sha256="
# Meta's challenge is an integer; anything long or odd is not Meta's.
MAX_CHALLENGE_LENGTH = 128
WINDOW_CLOSED_CODES = frozenset({131047})
OPTED_OUT_CODES = frozenset({131050})
# Rate-limit codes with the least time worth waiting: throughput (130429), pair (131056), spam (131048),
# WABA / app call limits (80007, 4), registration (133016), messaging limit (131064).
RATE_LIMIT_BACKOFF_SECONDS = {130429: 1.0, 131056: 6.0, 131048: 60.0, 80007: 60.0, 4: 60.0, 133016: 60.0, 131064: 60.0}
DEFAULT_RATE_LIMIT_BACKOFF_SECONDS = 5.0
# Unknown/temporary errors Meta says to retry: API unknown/service (1, 2), unknown (131000), service unavailable
# (131016), throughput upgrade in progress (131057), server temporarily unavailable (133004).
RETRYABLE_CODES = frozenset({1, 2, 131000, 131016, 131057, 133004})
# After an answer that leaves open whether Meta took the message (no answer, 5xx), the retry waits at least this
# long: Meta's `sent` status usually arrives within seconds and, carrying our key, reconciles the row first.
STATUS_GRACE_SECONDS = 10.0
CAPTION_LIMIT = 1024
# biz_opaque_callback_data is at most 512 characters.
CALLBACK_DATA_LIMIT = 512
# Longest the per-number throughput limiter makes a send wait before giving up for a later retry.
MAX_THROUGHPUT_WAIT_SECONDS = 5.0
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
VIDEO_TYPES = frozenset({"video/mp4", "video/3gpp"})


def compute_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value Meta sends with `body`."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(app_secret: str, body: bytes, header: str | None) -> bool:
    if not app_secret or not header:
        return False
    # Hex digests are case-insensitive; compare in constant time.
    return hmac.compare_digest(compute_signature(app_secret, body).encode(), header.strip().lower().encode())


def media_kind(url: str) -> tuple[str, str]:
    """Meta message type for a media URL (from its path's extension) and the file name: photos without a known
    extension go as images, anything Meta cannot show inline as a document."""
    path = urlsplit(url).path
    filename = unquote(posixpath.basename(path)) or "file"
    guessed, _ = mimetypes.guess_type(path)
    if guessed is None or guessed in IMAGE_TYPES:
        return "image", filename
    if guessed in VIDEO_TYPES:
        return "video", filename
    if guessed.startswith("audio/"):
        return "audio", filename
    return "document", filename


def recipient(chat_id: str) -> dict[str, str]:
    """A phone number (wa_id) goes in `to`; a business-scoped user id (`US.…`) in `recipient`."""
    return {"to": chat_id} if chat_id.lstrip("+").isdigit() else {"recipient": chat_id}


class MetaProvider:
    """The Meta WhatsApp Cloud API adapter (one business number: `META_PHONE_NUMBER_ID`)."""

    def __init__(self, settings: MetaSettings, http: httpx.AsyncClient, redis: Redis) -> None:
        self._settings = settings
        self._http = http
        self._redis = redis

    @property
    def channel(self) -> Channel:
        return Channel.META

    @property
    def max_text_length(self) -> int:
        return self._settings.max_text_length

    @property
    def window_applies(self) -> bool:
        return True

    @property
    def captions_media(self) -> bool:
        return True

    @property
    def has_window_template(self) -> bool:
        return self._settings.template_name_and_language is not None

    @property
    def duplicate_window(self) -> timedelta:
        """Meta has no idempotency key: a resend of a possibly accepted message is never safe (the outbox holds it
        until a status webhook, which carries our key, reconciles it)."""
        return timedelta(0)

    @property
    def finds_sent(self) -> bool:
        return False

    # --- webhook ----------------------------------------------------------------------------------------------

    def verify_subscription(self, query: Mapping[str, str]) -> str:
        """Meta's GET handshake: the challenge to echo, or `WebhookRejectedError` (403)."""
        expected = self._settings.verify_token.get_secret_value()
        given = query.get("hub.verify_token", "")
        if (
            not expected
            or query.get("hub.mode") != "subscribe"
            or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
        ):
            raise WebhookRejectedError("verification failed", status_code=403)
        challenge = query.get("hub.challenge", "")
        if not challenge or len(challenge) > MAX_CHALLENGE_LENGTH or not challenge.isprintable():
            raise MalformedWebhookError("hub.challenge is missing or invalid")
        return challenge

    def verify(self, request: WebhookRequest) -> None:
        secret = self._settings.app_secret.get_secret_value()
        if not signature_matches(secret, request.body, request.header(SIGNATURE_HEADER)):
            raise WebhookRejectedError("missing or invalid X-Hub-Signature-256", status_code=403)

    def parse(self, request: WebhookRequest) -> list[InboundEvent]:
        return meta_webhook.parse(request.body, phone_number_id=self._settings.phone_number_id, graph=self._graph())

    async def check_credentials(self) -> str:
        return await probe_phone_number(self._settings, self._http)

    # --- sending ----------------------------------------------------------------------------------------------

    def _graph(self) -> str:
        return f"{self._settings.api_url.rstrip('/')}/{self._settings.api_version.strip('/')}"

    async def send_text(self, chat_id: str, text: str, *, idempotency_key: str) -> SendResult:
        return await self._send(chat_id, "text", {"body": text}, idempotency_key)

    async def send_media(
        self,
        chat_id: str,
        url: str,
        *,
        idempotency_key: str,
        caption: str | None = None,
        filename: str | None = None,
    ) -> SendResult:
        kind, guessed_name = media_kind(url)
        content: dict[str, Any] = {"link": url}
        if kind == "document":
            # The name the customer sees; a signed link's path ("/documents/quotes/7.pdf") is not it.
            content["filename"] = filename or guessed_name
        if caption and kind == "audio":
            # Audio takes no caption: the caption goes first, as its own message.
            await self._send(chat_id, "text", {"body": caption}, f"{idempotency_key}:caption")
        elif caption:
            content["caption"] = caption[:CAPTION_LIMIT]
        return await self._send(chat_id, kind, content, idempotency_key)

    async def download_media(self, media: Media, *, limits: MediaLimits) -> DownloadedMedia:
        """Two steps: `GET /{version}/{media_id}` answers a short-lived URL (with the type and size), which is then
        downloaded with the same bearer token (Meta refuses it without)."""
        token = self._settings.access_token.get_secret_value()
        if not token:
            raise MediaUnavailableError("META_ACCESS_TOKEN is not set")
        headers = {"Authorization": f"Bearer {token}"}
        url, hint = media.url, media.content_type
        if url.startswith(self._graph() + "/"):
            try:
                response = await self._http.get(url, headers=headers, timeout=limits.timeout_seconds)
                info = response.json() if response.status_code < 400 else None
            except (httpx.HTTPError, ValueError) as exc:
                raise MediaUnavailableError(f"media lookup: {type(exc).__name__}") from exc
            if not isinstance(info, dict) or not isinstance(info.get("url"), str):
                raise MediaUnavailableError(f"media lookup: HTTP {response.status_code}")
            hint = info.get("mime_type") if isinstance(info.get("mime_type"), str) else hint
            if hint and not limits.allows(hint):
                raise MediaRefusedError("type_refused", hint, content_type=hint)
            size = info.get("file_size")
            if isinstance(size, int | str) and str(size).isdigit() and int(size) > limits.max_bytes:
                raise MediaRefusedError("too_large", f"{size} bytes", content_type=hint)
            url = info["url"]
        return await fetch_limited(self._http, url, limits=limits, headers=headers, content_type_hint=hint)

    async def send_template(self, chat_id: str, *, idempotency_key: str) -> SendResult:
        template = self._settings.template_name_and_language
        if template is None:
            raise ProviderNotConfiguredError("window_closed", "no META_WINDOW_TEMPLATE configured")
        name, language = template
        return await self._send(chat_id, "template", {"name": name, "language": {"code": language}}, idempotency_key)

    async def find_sent(
        self, chat_id: str, text: str | None, *, since: datetime, exclude: Collection[str]
    ) -> str | None:
        # The Cloud API cannot list sent messages: only a status webhook (carrying our key) can reconcile a send
        # whose answer was lost.
        return None

    async def _send(self, chat_id: str, kind: str, content: dict[str, Any], idempotency_key: str) -> SendResult:
        token = self._settings.access_token.get_secret_value()
        if not token or not self._settings.phone_number_id:
            raise ProviderNotConfiguredError(
                "not_configured", "META_ACCESS_TOKEN and META_PHONE_NUMBER_ID are required"
            )
        await self._pace(chat_id)
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **recipient(chat_id),
            "type": kind,
            kind: content,
            "biz_opaque_callback_data": idempotency_key[:CALLBACK_DATA_LIMIT],
        }
        try:
            response = await self._http.post(
                f"{self._graph()}/{self._settings.phone_number_id}/messages",
                json=payload,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            maybe_accepted = transport_error(exc).maybe_accepted
            raise RetryableProviderError(
                "network", type(exc).__name__, retry_after=STATUS_GRACE_SECONDS, maybe_accepted=maybe_accepted
            ) from exc
        return self._result(response)

    async def _pace(self, chat_id: str) -> None:
        """Meta's limits, kept before the call: the pair rate limit refuses at once (the outbox retries the row
        later, re-checking the gate), the number's throughput waits a moment. Without Redis, no pacing."""
        settings = self._settings
        number = settings.phone_number_id
        try:
            if settings.pair_interval_seconds > 0:
                wait = await token_bucket.take(
                    self._redis,
                    f"sb:meta:pair:{number}:{short_hash(chat_id)}",
                    rate=1 / settings.pair_interval_seconds,
                    capacity=settings.pair_burst,
                )
                if wait > 0:
                    log.info("meta.pair_limit_wait", chat=short_hash(chat_id), seconds=round(wait, 2))
                    raise RateLimitedError("131056", "pair rate limit (held before sending)", retry_after=wait)
            waited = 0.0
            while True:
                wait = await token_bucket.take(
                    self._redis,
                    f"sb:meta:mps:{number}",
                    rate=settings.max_sends_per_second,
                    capacity=max(1, int(settings.max_sends_per_second)),
                )
                if wait <= 0:
                    return
                if waited + wait > MAX_THROUGHPUT_WAIT_SECONDS:
                    raise RateLimitedError("130429", "throughput limit (held before sending)", retry_after=wait)
                waited += wait
                await asyncio.sleep(wait)
        except RedisError as exc:
            log.warning("meta.pacing_unavailable", error=type(exc).__name__)

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.is_success:
            messages = body.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else None
            message_id = first.get("id") if isinstance(first, dict) else None
            return SendResult(provider_message_id=message_id if isinstance(message_id, str) and message_id else None)
        raise _error(response, body)


def _error(response: httpx.Response, body: dict[str, Any]) -> Exception:
    """A Graph API error (`{"error": {"message", "type", "code", "error_data": {"details"}, "fbtrace_id"}}`) in
    the outbox's taxonomy. Meta asks to branch on `code`, not on the HTTP status or the titles."""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = error.get("message")
    description = str(details or message or response.reason_phrase)[:500]
    label = str(code) if code is not None else str(response.status_code)
    if response.status_code == 429 or code in RATE_LIMIT_BACKOFF_SECONDS:
        backoff = RATE_LIMIT_BACKOFF_SECONDS.get(code or 0, DEFAULT_RATE_LIMIT_BACKOFF_SECONDS)
        return RateLimitedError(label, description, retry_after=backoff)
    if response.status_code >= 500 or code in RETRYABLE_CODES:
        return RetryableProviderError(label, description, retry_after=STATUS_GRACE_SECONDS)
    if code in WINDOW_CLOSED_CODES:
        return WindowClosedError(label, description)
    if code in OPTED_OUT_CODES:
        return OptedOutError(label, description)
    return PermanentProviderError(label, description)


async def probe_phone_number(settings: MetaSettings, http: httpx.AsyncClient) -> str:
    """A harmless call (`GET /{phone_number_id}`): the token works for this number; its name and quality rating."""
    token = settings.access_token.get_secret_value()
    if not token or not settings.phone_number_id:
        raise ProviderNotConfiguredError("not_configured", "META_ACCESS_TOKEN and META_PHONE_NUMBER_ID are required")
    url = f"{settings.api_url.rstrip('/')}/{settings.api_version.strip('/')}/{settings.phone_number_id}"
    try:
        response = await http.get(
            url,
            params={"fields": "verified_name,display_phone_number,quality_rating"},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        raise RetryableProviderError("network", type(exc).__name__) from exc
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if not response.is_success:
        raise _error(response, body)
    return (
        f"number {settings.phone_number_id} ({body.get('verified_name', '?')}), "
        f"quality {body.get('quality_rating', 'unknown')}"
    )
