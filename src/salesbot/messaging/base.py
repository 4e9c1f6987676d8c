"""The contract every messaging provider implements, the events webhooks are parsed into, and the error taxonomy.

A provider adapter is the only code that knows a vendor's wire format: the inbox hands it a framework-neutral
`WebhookRequest`, gets back typed `InboundEvent`s, and the outbox calls `send_*`. Vendor failures leave an adapter
only as one of the `ProviderError` classes below (never as an HTTP-library exception), so the outbox decides
between retry, failure, template and opt-out without knowing the vendor.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from salesbot.kit.errors import AppError
from salesbot.models import Channel, DeliveryStatus


@dataclass(frozen=True)
class WebhookRequest:
    """What a webhook route received, independent of the web framework."""

    path: str
    query: str
    # Header names lower-cased.
    headers: Mapping[str, str]
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str | None = None


@dataclass(frozen=True)
class MediaLimits:
    """What the worker accepts when it downloads a customer's file (`MEDIA_*` settings)."""

    max_bytes: int
    # MIME types; "audio/*" matches a whole family.
    allowed_types: tuple[str, ...]
    timeout_seconds: float = 20.0

    def allows(self, content_type: str) -> bool:
        mime = content_type.split(";")[0].strip().lower()
        family = mime.split("/")[0] + "/*"
        return any(allowed.strip().lower() in (mime, family) for allowed in self.allowed_types)


@dataclass(frozen=True)
class DownloadedMedia:
    data: bytes
    content_type: str
    filename: str | None = None


class MediaRefusedError(Exception):
    """The file breaks a limit (`reason`: too_large, type_refused): it is not kept, and never retried."""

    def __init__(self, reason: str, detail: str = "", *, content_type: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.content_type = content_type


class MediaUnavailableError(Exception):
    """The file could not be fetched (network, 4xx/5xx, expired link, unknown reference)."""


@dataclass(frozen=True)
class InboundMessage:
    """A message the customer wrote (any type: text, image, vcard, unsupported, ...)."""

    channel: Channel
    provider_message_id: str
    # The provider's address of the chat, stored as `Customer.chat_id` and used to answer.
    chat_id: str
    text: str
    content_type: str = "text"
    media: tuple[Media, ...] = ()
    contact_name: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class EchoMessage:
    """An outgoing message the provider reports back (Wazzup `isEcho: true`): the bot's own or a human's."""

    channel: Channel
    provider_message_id: str
    chat_id: str
    text: str
    content_type: str = "text"
    media: tuple[Media, ...] = ()
    author_name: str | None = None
    sent_at: datetime | None = None
    # The closed-window template went out (its rendered text is not the text of any outbox row).
    is_template: bool = False
    # Our idempotency key, when the provider reports it back with its echo of an API send.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status of an outbound message, identified by the provider's message id."""

    channel: Channel
    provider_message_id: str
    status: DeliveryStatus
    error_code: str | None = None
    error_description: str | None = None
    # Our idempotency key as the provider reports it back with the status (Meta `biz_opaque_callback_data`): it
    # ties the status to the outbound row even when the send call's answer, and so the provider id, was lost.
    idempotency_key: str | None = None

    @property
    def error(self) -> str | None:
        if self.error_code is None and self.error_description is None:
            return None
        return ": ".join(part for part in (self.error_code, self.error_description) if part)


InboundEvent = InboundMessage | EchoMessage | StatusUpdate


@dataclass(frozen=True)
class SendResult:
    # None when the provider accepted the message but did not return an id (Wazzup's duplicate answer).
    provider_message_id: str | None
    # The provider refused the idempotency key as already used: the message went out on an earlier attempt.
    already_sent: bool = False


# --- errors ---------------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A send failed; `code` is the vendor's error code (or the HTTP status), `description` its text."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description


class RetryableProviderError(ProviderError):
    """Network failure, 5xx: the same request may succeed later.

    `maybe_accepted` says whether the provider may have taken the message although the call failed (a timeout
    or a dropped connection after the request left, a gateway error): the outbox then treats the row as possibly
    sent. False only when the request provably did not create a message (it never connected, or the provider
    answered with its own refusal).
    """

    def __init__(
        self, code: str, description: str = "", *, retry_after: float | None = None, maybe_accepted: bool = True
    ) -> None:
        super().__init__(code, description)
        self.retry_after = retry_after
        self.maybe_accepted = maybe_accepted


# An error answer through a gateway may hide a request the provider behind it processed.
GATEWAY_STATUSES = frozenset({502, 504})


def transport_error(exc: httpx.HTTPError) -> RetryableProviderError:
    """A send's HTTP call failed without an answer: possibly accepted unless the request provably never left."""
    never_left = isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol
    )
    return RetryableProviderError("network", type(exc).__name__, maybe_accepted=not never_left)


def server_error(status_code: int, code: str, description: str) -> RetryableProviderError:
    """A 5xx answer: the provider's own refusal, unless a gateway answered in its place."""
    return RetryableProviderError(code, description, maybe_accepted=status_code in GATEWAY_STATUSES)


class RateLimitedError(RetryableProviderError):
    """429 and vendor rate-limit codes: retry, but not sooner than `retry_after` (the message was not taken)."""

    def __init__(self, code: str, description: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(code, description, retry_after=retry_after, maybe_accepted=False)


class PermanentProviderError(ProviderError):
    """The provider rejected the message for good (bad number, invalid request, no balance...)."""


class WindowClosedError(PermanentProviderError):
    """The 24-hour customer-service window is closed: only an approved template may be sent."""


class OptedOutError(PermanentProviderError):
    """The recipient unsubscribed or blocked the sender at the provider."""


class ProviderNotConfiguredError(PermanentProviderError):
    """Credentials or a template needed for this send are not configured."""


class WebhookRejectedError(AppError):
    """The request is not from the provider (wrong secret: 404, bad signature: 403)."""


class MalformedWebhookError(AppError):
    """The request is authentic but its body cannot be parsed (400)."""

    status_code = 400


# --- the protocol ---------------------------------------------------------------------------------------------


class MessagingProvider(Protocol):
    """One messaging vendor: webhook verification and parsing, sending, limits."""

    @property
    def channel(self) -> Channel: ...

    @property
    def max_text_length(self) -> int:
        """Longest text part to send in one message; the outbox splits longer replies."""
        ...

    @property
    def window_applies(self) -> bool:
        """Whether free-form messages need the customer's last message within 24 hours (WABA, Twilio)."""
        ...

    @property
    def has_window_template(self) -> bool:
        """Whether a template is configured for a closed 24-hour window."""
        ...

    @property
    def captions_media(self) -> bool:
        """Whether a photo or document can carry a caption in the same message (Wazzup: no, `text` and
        `contentUri` are exclusive); without, the outbox sends the file alone."""
        ...

    @property
    def duplicate_window(self) -> timedelta:
        """How long the provider refuses a second send with the same idempotency key (Wazzup: 60 s); zero when
        it has no idempotency key at all. A resend of a possibly accepted message is safe only inside it."""
        ...

    @property
    def finds_sent(self) -> bool:
        """Whether `find_sent` can look up a message an interrupted attempt may have created (Twilio)."""
        ...

    def verify(self, request: WebhookRequest) -> None:
        """Raise `WebhookRejectedError` unless the request provably comes from the provider."""
        ...

    def parse(self, request: WebhookRequest) -> list[InboundEvent]:
        """Parse a verified request; raise `MalformedWebhookError` for a body that cannot be read."""
        ...

    async def send_text(self, chat_id: str, text: str, *, idempotency_key: str) -> SendResult: ...

    async def send_media(
        self,
        chat_id: str,
        url: str,
        *,
        idempotency_key: str,
        caption: str | None = None,
        filename: str | None = None,
    ) -> SendResult: ...

    async def download_media(self, media: Media, *, limits: MediaLimits) -> DownloadedMedia:
        """Fetch a file the customer sent with the provider's credentials, within `limits`.

        Raises `MediaRefusedError` for a file over the size limit or of a type not allowed (checked before the
        body is read where the provider says it up front) and `MediaUnavailableError` when it cannot be fetched.
        """
        ...

    async def send_template(self, chat_id: str, *, idempotency_key: str) -> SendResult:
        """Send the configured closed-window template (raises `ProviderNotConfiguredError` without one)."""
        ...

    async def find_sent(
        self, chat_id: str, text: str | None, *, since: datetime, exclude: Collection[str]
    ) -> str | None:
        """After a crash mid-send: the provider id of a message with this text (None: the closed-window template,
        whatever it rendered to) sent to `chat_id` since `since` and not in `exclude`, if any.

        Providers without a message lookup (`finds_sent` False) return None.
        """
        ...


# Column sizes of `messages.provider_message_id` and `customers.chat_id`: longer values are not a real provider's.
MAX_ID_LENGTH = 128


# A JSON string may escape half of a surrogate pair ("\\ud83d" alone): Python decodes it to a lone surrogate,
# which has no UTF-8 encoding, so the database refuses it. Such a payload must be stored, not retried for ever.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (any string taken from a provider's JSON)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def clean_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters or lone surrogates; a payload carrying one must not make the
    webhook fail."""
    return storable(text.replace("\x00", ""))


def valid_id(value: str) -> bool:
    return 0 < len(value) <= MAX_ID_LENGTH and "\x00" not in value


def error_token(code: object) -> str:
    """Vendor error codes compared case- and separator-insensitively (`repeatedCrmMessageId` = `REPEATED_CRM_...`)."""
    return "".join(ch for ch in str(code).upper() if ch.isalnum())
