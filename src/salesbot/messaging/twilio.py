"""Twilio WhatsApp: form-encoded webhooks signed with `X-Twilio-Signature`, and the Messages API.

The signature is base64(HMAC-SHA1(auth token, URL + every POST parameter as name+value, sorted by name)), over
the public URL Twilio called (`PUBLIC_BASE_URL` + path + query). Twilio's own validator accepts the URL with and
without the default port, so this one does too. Twilio has no idempotency key on message creation: the outbox
records each attempt before calling it and, after a crash, looks the message up (`find_sent`) before resending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from salesbot.kit.logging import get_logger
from salesbot.messaging.base import (
    DownloadedMedia,
    InboundEvent,
    InboundMessage,
    MalformedWebhookError,
    Media,
    MediaLimits,
    MediaUnavailableError,
    OptedOutError,
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
    server_error,
    transport_error,
    valid_id,
)
from salesbot.messaging.download import fetch_limited
from salesbot.models import Channel, DeliveryStatus
from salesbot.settings import TwilioSettings

log = get_logger(__name__)

SIGNATURE_HEADER = "x-twilio-signature"
STATUS_PATH_SUFFIX = "/status"
RATE_LIMIT_CODES = frozenset({"20429", "63017", "63018"})
WINDOW_CLOSED_CODES = frozenset({"63016"})
OPTED_OUT_CODES = frozenset({"21610", "63014"})
RATE_LIMIT_BACKOFF_SECONDS = 5.0
STATUS_MAP = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
    "undelivered": DeliveryStatus.FAILED,
}
# A message created by a crashed attempt is looked up this far before the recorded attempt (clock skew).
RECONCILE_SKEW = timedelta(minutes=2)


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature (the algorithm of twilio-python's `RequestValidator.compute_signature`)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _with_port(url: str) -> str:
    parts = urlsplit(url)
    if parts.port is not None or not parts.hostname:
        return url
    port = 443 if parts.scheme == "https" else 80
    return urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))


def _without_port(url: str) -> str:
    parts = urlsplit(url)
    if parts.port is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]))


def signature_matches(auth_token: str, url: str, params: list[tuple[str, str]], signature: str) -> bool:
    """Constant-time check against the URL with and without its port, as Twilio's validator does."""
    given = signature.encode("utf-8")
    results = [
        hmac.compare_digest(compute_signature(auth_token, candidate, params).encode("utf-8"), given)
        for candidate in (_with_port(url), _without_port(url))
    ]
    return any(results)


def parse_form(body: bytes) -> list[tuple[str, str]]:
    if not body:
        return []
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedWebhookError(f"body is not a valid form: {exc}") from exc


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


class TwilioProvider:
    """The Twilio WhatsApp adapter (sender `TWILIO_WHATSAPP_FROM`)."""

    def __init__(self, settings: TwilioSettings, http: httpx.AsyncClient, *, public_base_url: str) -> None:
        self._settings = settings
        self._http = http
        self._public_base_url = public_base_url.rstrip("/")

    @property
    def channel(self) -> Channel:
        return Channel.TWILIO

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
        return bool(self._settings.window_template_sid)

    @property
    def duplicate_window(self) -> timedelta:
        # No idempotency key on message creation.
        return timedelta(0)

    @property
    def finds_sent(self) -> bool:
        return True

    # --- webhook ----------------------------------------------------------------------------------------------

    def public_url(self, request: WebhookRequest) -> str:
        url = self._public_base_url + request.path
        return f"{url}?{request.query}" if request.query else url

    def verify(self, request: WebhookRequest) -> None:
        token = self._settings.auth_token.get_secret_value()
        signature = request.header(SIGNATURE_HEADER)
        if not token or not signature:
            raise WebhookRejectedError("missing or invalid X-Twilio-Signature", status_code=403)
        params = parse_form(request.body)
        if not signature_matches(token, self.public_url(request), params, signature):
            raise WebhookRejectedError("missing or invalid X-Twilio-Signature", status_code=403)

    def parse(self, request: WebhookRequest) -> list[InboundEvent]:
        params = dict(parse_form(request.body))
        sid = params.get("MessageSid") or params.get("SmsMessageSid") or params.get("SmsSid")
        if not sid or not valid_id(sid):
            raise MalformedWebhookError("MessageSid is missing or invalid")
        if request.path.rstrip("/").endswith(STATUS_PATH_SUFFIX):
            status = STATUS_MAP.get((params.get("MessageStatus") or params.get("SmsStatus") or "").lower())
            if status is None:
                # queued/sending/accepted...: nothing a manager needs to see.
                return []
            return [
                StatusUpdate(
                    channel=Channel.TWILIO,
                    provider_message_id=sid,
                    status=status,
                    error_code=params.get("ErrorCode") or ("failed" if status is DeliveryStatus.FAILED else None),
                    error_description=params.get("ErrorMessage") or None,
                )
            ]
        sender = params.get("From")
        if not sender or not valid_id(sender):
            raise MalformedWebhookError("From is missing or invalid")
        media = tuple(
            Media(url=clean_text(url), content_type=clean_text(params.get(f"MediaContentType{index}") or "") or None)
            for index in range(min(_int(params.get("NumMedia")), 10))
            if (url := params.get(f"MediaUrl{index}"))
        )
        text = clean_text(params.get("Body") or params.get("ButtonText") or "")
        return [
            InboundMessage(
                channel=Channel.TWILIO,
                provider_message_id=sid,
                chat_id=sender,
                text=text,
                content_type=clean_text(self._content_type(params, media))[:32],
                media=media,
                contact_name=clean_text(params.get("ProfileName") or "")[:200] or None,
            )
        ]

    @staticmethod
    def _content_type(params: dict[str, str], media: tuple[Media, ...]) -> str:
        if params.get("MessageType"):
            return params["MessageType"]
        if params.get("Latitude") and params.get("Longitude"):
            return "location"
        if media and media[0].content_type:
            return media[0].content_type.split("/")[0]
        return "text"

    # --- sending ----------------------------------------------------------------------------------------------

    def _messages_url(self) -> str:
        return f"{self._settings.api_url.rstrip('/')}/2010-04-01/Accounts/{self._settings.account_sid}/Messages.json"

    def _auth(self) -> httpx.BasicAuth:
        token = self._settings.auth_token.get_secret_value()
        if not self._settings.account_sid or not token or not self._settings.whatsapp_from:
            raise ProviderNotConfiguredError(
                "not_configured", "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM are required"
            )
        return httpx.BasicAuth(self._settings.account_sid, token)

    async def send_text(self, chat_id: str, text: str, *, idempotency_key: str) -> SendResult:
        return await self._create(chat_id, {"Body": text})

    async def send_media(
        self,
        chat_id: str,
        url: str,
        *,
        idempotency_key: str,
        caption: str | None = None,
        filename: str | None = None,
    ) -> SendResult:
        fields = {"MediaUrl": url}
        if caption:
            fields["Body"] = caption
        return await self._create(chat_id, fields)

    async def download_media(self, media: Media, *, limits: MediaLimits) -> DownloadedMedia:
        # `MediaUrl{N}` needs HTTP basic auth (account SID + auth token) unless the account disabled it; Twilio
        # answers with a redirect to a short-lived storage URL, which `fetch_limited` follows.
        token = self._settings.auth_token.get_secret_value()
        if not self._settings.account_sid or not token:
            raise MediaUnavailableError("TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not set")
        auth = httpx.BasicAuth(self._settings.account_sid, token)
        return await fetch_limited(
            self._http, media.url, limits=limits, auth=auth, content_type_hint=media.content_type
        )

    async def send_template(self, chat_id: str, *, idempotency_key: str) -> SendResult:
        if not self._settings.window_template_sid:
            raise ProviderNotConfiguredError("window_closed", "no TWILIO_WINDOW_TEMPLATE_SID configured")
        return await self._create(chat_id, {"ContentSid": self._settings.window_template_sid})

    async def _create(self, chat_id: str, fields: dict[str, str]) -> SendResult:
        auth = self._auth()
        data = {
            "To": chat_id,
            "From": self._settings.whatsapp_from,
            **fields,
            "StatusCallback": f"{self._public_base_url}/webhooks/twilio/status",
        }
        try:
            response = await self._http.post(self._messages_url(), data=data, auth=auth)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        body = self._json(response)
        if response.is_success:
            sid = body.get("sid")
            return SendResult(provider_message_id=str(sid) if sid else None)
        raise self._error(response, body)

    async def find_sent(
        self, chat_id: str, text: str | None, *, since: datetime, exclude: Collection[str]
    ) -> str | None:
        """The newest message to `chat_id` with exactly this body, created since `since`, not already recorded.

        For the closed-window template (`text` None) the body is whatever Twilio rendered from the content
        template, unknown here: any unrecorded message to the chat since the attempt is the template (every other
        message to a customer goes out through salesbot and has its sid recorded)."""
        auth = self._auth()
        params = {"To": chat_id, "From": self._settings.whatsapp_from, "PageSize": "50"}
        try:
            response = await self._http.get(self._messages_url(), params=params, auth=auth)
        except httpx.HTTPError as exc:
            # A failed lookup sent nothing.
            raise RetryableProviderError("network", type(exc).__name__, maybe_accepted=False) from exc
        body = self._json(response)
        if not response.is_success:
            raise self._error(response, body)
        earliest = since - RECONCILE_SKEW
        messages = body.get("messages")
        for item in messages if isinstance(messages, list) else []:
            if not isinstance(item, dict):
                continue
            sid = item.get("sid")
            if not isinstance(sid, str) or sid in exclude or (text is not None and item.get("body") != text):
                continue
            created = self._created_at(item.get("date_created"))
            if created is None or created >= earliest:
                return sid
        return None

    @staticmethod
    def _created_at(value: object) -> datetime | None:
        if not isinstance(value, str):
            return None
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _error(response: httpx.Response, body: dict[str, Any]) -> Exception:
        code = str(body.get("code") or response.status_code)
        description = str(body.get("message") or response.reason_phrase)
        if response.status_code == 429 or code in RATE_LIMIT_CODES:
            retry_after = response.headers.get("retry-after")
            try:
                delay = max(float(retry_after), RATE_LIMIT_BACKOFF_SECONDS) if retry_after else None
            except ValueError:
                delay = None
            return RateLimitedError(code, description, retry_after=delay or RATE_LIMIT_BACKOFF_SECONDS)
        if response.status_code >= 500:
            return server_error(response.status_code, code, description)
        if code in WINDOW_CLOSED_CODES:
            return WindowClosedError(code, description)
        if code in OPTED_OUT_CODES:
            return OptedOutError(code, description)
        return PermanentProviderError(code, description)

    async def check_credentials(self) -> str:
        """A harmless call (`GET /Accounts/{sid}.json`): the SID and token work and the account is active."""
        if not self._settings.account_sid or not self._settings.auth_token.get_secret_value():
            raise ProviderNotConfiguredError("not_configured", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        url = f"{self._settings.api_url.rstrip('/')}/2010-04-01/Accounts/{self._settings.account_sid}.json"
        try:
            response = await self._http.get(url, auth=self._auth())
        except httpx.HTTPError as exc:
            raise RetryableProviderError("network", type(exc).__name__) from exc
        body = self._json(response)
        if not response.is_success:
            raise self._error(response, body)
        status = str(body.get("status") or "unknown")
        if status != "active":
            raise PermanentProviderError("account_status", f"account {self._settings.account_sid} is {status}")
        return f"account {self._settings.account_sid} is active"
