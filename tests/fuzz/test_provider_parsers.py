"""Property tests of every provider parser: any body either parses into events the database can store, or is
refused with a clean 400 (`MalformedWebhookError`); no other exception, whatever the bytes.

Bodies are arbitrary JSON (nested values of every type where the parser expects objects, strings with NUL
characters and lone surrogates, numbers for ids), near-valid provider payloads with hostile field values,
arbitrary forms, and arbitrary bytes.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesbot.messaging.base import (
    MAX_ID_LENGTH,
    EchoMessage,
    InboundEvent,
    InboundMessage,
    MalformedWebhookError,
    StatusUpdate,
    WebhookRejectedError,
    WebhookRequest,
)
from salesbot.messaging.console import ConsoleProvider
from salesbot.messaging.twilio import TwilioProvider, compute_signature
from salesbot.messaging.wazzup import WazzupProvider
from salesbot.settings import TwilioSettings, WazzupSettings

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SECRET = "fuzz-secret-0123456789abcdef"
TOKEN = "fuzz-twilio-token-0123456789"
BASE_URL = "https://bot.example.test"

# Text with what breaks storage or parsing: NUL, lone surrogates, RTL marks, emoji, very long runs.
hostile_chars = st.one_of(
    st.characters(),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "😀", "'", '"', "\\", "%", "\n"]),
)
hostile_text = st.text(alphabet=hostile_chars, max_size=60) | st.builds(lambda n: "7" * n, st.integers(100, 400))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | hostile_text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4), max_leaves=15
)

WAZZUP_FIELDS = [
    "messageId", "dateTime", "channelId", "chatType", "chatId", "type", "isEcho", "status", "text", "contentUri",
    "authorName", "authorId", "contact", "isEdited", "isDeleted", "sentFromApp", "quotedMessage", "error",
]  # fmt: skip
wazzup_item = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(WAZZUP_FIELDS, json_values),
        "messageId": hostile_text | st.uuids().map(str) | st.integers(),
        "chatId": hostile_text | st.from_regex(r"\A[0-9]{5,15}\Z"),
        "isEcho": st.booleans() | json_values,
        "contact": st.fixed_dictionaries({}, optional={"name": json_values, "avatarUri": json_values}) | json_values,
    },
)
wazzup_status = st.fixed_dictionaries(
    {},
    optional={
        "messageId": hostile_text | st.uuids().map(str),
        "status": st.sampled_from(["sent", "delivered", "read", "error", "edited", "inbound"]) | json_values,
        "error": st.fixed_dictionaries({}, optional={"error": json_values, "description": json_values}) | json_values,
    },
)
wazzup_body = (
    st.fixed_dictionaries(
        {},
        optional={
            "messages": st.lists(wazzup_item | json_values, max_size=4) | json_values,
            "statuses": st.lists(wazzup_status | json_values, max_size=4) | json_values,
            "test": json_values,
            "channelsUpdates": json_values,
        },
    )
    | json_values
)


def storable(event: InboundEvent) -> None:
    """What PostgreSQL and the column sizes require of every event the inbox persists."""
    strings: list[str] = [event.provider_message_id]
    match event:
        case InboundMessage() | EchoMessage():
            strings += [event.chat_id, event.text, event.content_type, *(m.url for m in event.media)]
            assert len(event.content_type) <= 32
            assert 0 < len(event.chat_id) <= MAX_ID_LENGTH
            if isinstance(event, InboundMessage) and event.contact_name is not None:
                strings.append(event.contact_name)
                assert len(event.contact_name) <= 200
        case StatusUpdate():
            strings += [s for s in (event.error_code, event.error_description) if s]
    assert 0 < len(event.provider_message_id) <= MAX_ID_LENGTH
    for value in strings:
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogate: PostgreSQL must be able to store it


def request(body: bytes, *, path: str = "/webhooks/x", headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(path=path, query="", headers=headers or {}, body=body, path_params={"secret": SECRET})


def parse_or_400(parse: Any, webhook: WebhookRequest) -> list[InboundEvent]:
    refused: MalformedWebhookError | None = None
    try:
        events: list[InboundEvent] = parse(webhook)
    except MalformedWebhookError as exc:
        refused, events = exc, []
    if refused is not None:
        assert (refused.status_code, bool(refused.message)) == (400, True)
    for event in events:
        storable(event)
    return events


wazzup = WazzupProvider(WazzupSettings(webhook_secret=SECRET, api_key="k", channel_id=""), httpx.AsyncClient())


@given(body=wazzup_body)
@FUZZ
def test_wazzup_json_parses_into_storable_events_or_400(body: Any) -> None:
    encoded = json.dumps(body, allow_nan=True).encode()
    parse_or_400(wazzup.parse, request(encoded))


@given(body=st.binary(max_size=300) | st.text(alphabet=hostile_chars).map(lambda t: t.encode("utf-8", "surrogatepass")))
@FUZZ
def test_wazzup_arbitrary_bytes_parse_or_400(body: bytes) -> None:
    parse_or_400(wazzup.parse, request(body))


TWILIO_KEYS = [
    "MessageSid", "SmsMessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaContentType0",
    "ProfileName", "WaId", "ButtonText", "ButtonPayload", "MessageType", "Latitude", "Longitude",
    "MessageStatus", "SmsStatus", "ErrorCode", "ErrorMessage",
]  # fmt: skip
form_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
twilio_params = st.lists(st.tuples(st.sampled_from(TWILIO_KEYS) | form_text, form_text), max_size=14)
twilio = TwilioProvider(
    TwilioSettings(account_sid="AC1", auth_token=TOKEN, whatsapp_from="whatsapp:+1"),
    httpx.AsyncClient(),
    public_base_url=BASE_URL,
)


@given(params=twilio_params, status=st.booleans())
@FUZZ
def test_twilio_forms_parse_into_storable_events_or_400(params: list[tuple[str, str]], status: bool) -> None:
    from urllib.parse import urlencode

    path = "/webhooks/twilio/status" if status else "/webhooks/twilio"
    body = urlencode(params).encode()
    signature = compute_signature(TOKEN, BASE_URL + path, params)
    webhook = request(body, path=path, headers={"x-twilio-signature": signature})
    # The signature is right; a form Twilio would never send is refused while being read (400).
    parse_or_400(lambda w: (twilio.verify(w), twilio.parse(w))[1], webhook)


@given(body=st.binary(max_size=300), signature=st.text(max_size=40) | st.none())
@FUZZ
def test_twilio_arbitrary_bytes_and_signatures_are_refused_cleanly(body: bytes, signature: str | None) -> None:
    headers = {} if signature is None else {"x-twilio-signature": signature}
    webhook = request(body, path="/webhooks/twilio", headers=headers)
    with pytest.raises((WebhookRejectedError, MalformedWebhookError)) as raised:
        twilio.verify(webhook)
    assert raised.value.status_code in (400, 403)


console = ConsoleProvider(redis=None, enabled=True)  # type: ignore[arg-type]  (parsing needs no Redis)
console_body = (
    st.fixed_dictionaries(
        {},
        optional={
            "phone": hostile_text | st.from_regex(r"\A\+?[0-9 ()-]{3,24}\Z") | json_values,
            "text": hostile_text | json_values,
            "name": hostile_text | json_values,
            "id": hostile_text | st.from_regex(r"\A[A-Za-z0-9_.:-]{1,100}\Z") | json_values,
        },
    )
    | json_values
)


@given(body=console_body)
@FUZZ
def test_console_json_parses_into_storable_events_or_400(body: Any) -> None:
    parse_or_400(console.parse, request(json.dumps(body, allow_nan=True).encode()))


@pytest.mark.parametrize(
    "body",
    [
        b'{"messages": [{"messageId": "m\\ud800", "chatId": "7999\\udfff", "text": "\\ud83d hi", "type": "t\\udc00"}]}',
        b'{"messages": [{"messageId": "m1", "chatId": "79990001122", "contact": {"name": "\\udc80"}}]}',
        b'{"statuses": [{"messageId": "\\ud800", "status": "error", "error": {"error": "\\udfff"}}]}',
    ],
)
def test_lone_surrogates_from_json_escapes_become_storable(body: bytes) -> None:
    """Found by this fuzzing: such a body made the webhook answer 503 for ever (the database refused the text)."""
    events = parse_or_400(wazzup.parse, request(body))
    assert events
