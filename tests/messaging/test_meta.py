"""The Meta Cloud API adapter on its own: signatures, the handshake, every webhook type, sends and their errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr

from salesbot.messaging.base import (
    EchoMessage,
    InboundMessage,
    MalformedWebhookError,
    OptedOutError,
    PermanentProviderError,
    ProviderNotConfiguredError,
    RateLimitedError,
    RetryableProviderError,
    StatusUpdate,
    WebhookRejectedError,
    WebhookRequest,
    WindowClosedError,
)
from salesbot.messaging.meta import STATUS_GRACE_SECONDS, MetaProvider, compute_signature, media_kind, signature_matches
from salesbot.models import Channel, DeliveryStatus
from salesbot.settings import MetaSettings
from tests.fakes.meta_api import META_BASE, NETWORK_ERROR, FakeMetaApi, graph_error, mocked_meta

FIXTURES = Path(__file__).parent.parent / "fixtures" / "meta"
TOKEN = "EAAJ-unit-test-token"
NUMBER = "1122334455667"  # the phone_number_id of the fixtures
SECRET = "unit-test-app-secret"
VERIFY = "unit-verify-token"
GRAPH = f"{META_BASE}/v21.0"


def settings(**overrides: Any) -> MetaSettings:
    values: dict[str, Any] = {
        "api_url": META_BASE,
        "access_token": SecretStr(TOKEN),
        "phone_number_id": NUMBER,
        "app_secret": SecretStr(SECRET),
        "verify_token": SecretStr(VERIFY),
    }
    values.update(overrides)
    return MetaSettings(**values)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def provider(http: httpx.AsyncClient, redis: ArqRedis) -> MetaProvider:
    return MetaProvider(settings(), http, redis)


@pytest.fixture
def api() -> FakeMetaApi:
    return FakeMetaApi(TOKEN, NUMBER)


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def signed(body: bytes) -> WebhookRequest:
    return WebhookRequest(
        path="/webhooks/meta", query="", headers={"x-hub-signature-256": compute_signature(SECRET, body)}, body=body
    )


def parse_one(provider: MetaProvider, name: str) -> Any:
    events = provider.parse(signed(fixture(name)))
    assert len(events) == 1, events
    return events[0]


# --- authenticity -----------------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    # Reference value computed independently: printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac secret
    assert compute_signature("secret", b'{"a":1}') == (
        "sha256=aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494"
    )
    body = fixture("text")
    header = compute_signature(SECRET, body)
    assert signature_matches(SECRET, body, header)
    assert signature_matches(SECRET, body, header.upper().replace("SHA256=", "sha256="))
    assert not signature_matches(SECRET, body + b" ", header)
    assert not signature_matches("other-secret", body, header)
    assert not signature_matches(SECRET, body, header.removeprefix("sha256="))
    assert not signature_matches("", body, compute_signature("", body))


def test_verify_rejects_missing_or_wrong_signatures(provider: MetaProvider) -> None:
    body = fixture("text")
    provider.verify(signed(body))
    for headers in (
        {},
        {"x-hub-signature-256": ""},
        {"x-hub-signature-256": "sha256=" + "0" * 64},
        {"x-hub-signature-256": compute_signature("wrong-secret", body)},
        # A SHA-1 signature (the legacy X-Hub-Signature) is not accepted in place of SHA-256.
        {"x-hub-signature": "sha1=" + "0" * 40},
    ):
        with pytest.raises(WebhookRejectedError) as excinfo:
            provider.verify(WebhookRequest(path="/webhooks/meta", query="", headers=headers, body=body))
        assert excinfo.value.status_code == 403


def test_verify_rejects_everything_without_an_app_secret(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    unconfigured = MetaProvider(settings(app_secret=SecretStr("")), http, redis)
    body = fixture("text")
    with pytest.raises(WebhookRejectedError):
        unconfigured.verify(
            WebhookRequest("/webhooks/meta", "", {"x-hub-signature-256": compute_signature("", body)}, body)
        )


def test_handshake_echoes_the_challenge_only_for_the_verify_token(
    provider: MetaProvider, http: httpx.AsyncClient, redis: ArqRedis
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    assert provider.verify_subscription(query) == "1158201444"
    for bad in ({"hub.verify_token": "wrong"}, {"hub.mode": "unsubscribe"}, {"hub.verify_token": ""}):
        with pytest.raises(WebhookRejectedError) as excinfo:
            provider.verify_subscription({**query, **bad})
        assert excinfo.value.status_code == 403
    with pytest.raises(MalformedWebhookError):
        provider.verify_subscription({**query, "hub.challenge": ""})
    with pytest.raises(WebhookRejectedError):
        MetaProvider(settings(verify_token=SecretStr("")), http, redis).verify_subscription(
            {**query, "hub.verify_token": ""}
        )


# --- messages: one test per type ----------------------------------------------------------------------------------


def test_text(provider: MetaProvider) -> None:
    message = parse_one(provider, "text")
    assert isinstance(message, InboundMessage)
    assert message.channel is Channel.META
    assert (message.provider_message_id, message.chat_id, message.text) == ("wamid.xyzxyz", "972987654321", "Body Text")
    assert (message.content_type, message.contact_name, message.media) == ("text", "Test Name", ())
    assert message.sent_at is not None
    assert int(message.sent_at.timestamp()) == 1697043223


def test_image_keeps_a_graph_reference_or_the_url_meta_gave(provider: MetaProvider) -> None:
    message = parse_one(provider, "image")
    assert (message.content_type, message.text) == ("image", "")
    assert [(m.url, m.content_type) for m in message.media] == [(f"{GRAPH}/65463453", "image/jpeg")]
    with_url = parse_one(provider, "image_with_url")
    assert with_url.media[0].url.startswith("https://lookaside.fbsbx.com/whatsapp_business/attachments/")


@pytest.mark.parametrize(
    ("name", "content_type", "text", "mime", "media_id"),
    [
        ("video", "video", "caption", "video/mp4", "765756756"),
        ("document", "document", "caption", "application/pdf", "1234567890987654321"),
        ("audio", "audio", "", "audio/ogg; codecs=opus", "1234567890987654321"),
        ("voice", "audio", "", "audio/ogg; codecs=opus", "1234567890987654321"),
        ("sticker", "sticker", "", "image/webp", "1234567890987654321"),
    ],
)
def test_media_types(provider: MetaProvider, name: str, content_type: str, text: str, mime: str, media_id: str) -> None:
    message = parse_one(provider, name)
    assert (message.content_type, message.text) == (content_type, text)
    assert [m.content_type for m in message.media] == [mime]
    assert message.media[0].url == f"{GRAPH}/{media_id}"


def test_location(provider: MetaProvider) -> None:
    message = parse_one(provider, "location")
    assert message.content_type == "location"
    assert message.text == (
        "Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025, (37.4611978, -122.2164385), "
        "https://maps.google.com/?cid=2000000000000000000"
    )


def test_contacts(provider: MetaProvider) -> None:
    message = parse_one(provider, "contacts")
    assert message.content_type == "contacts"
    assert message.text == "Chandler Bing +1 555-555-5555; Monica +1 666-666-6666; Rachel Green +1 777-777-7777"


@pytest.mark.parametrize(("name", "content_type"), [("button_reply", "interactive"), ("list_reply", "interactive")])
def test_interactive_replies_are_the_title_the_customer_tapped(
    provider: MetaProvider, name: str, content_type: str
) -> None:
    message = parse_one(provider, name)
    assert (message.content_type, message.text) == (content_type, "title")


def test_template_quick_reply_button(provider: MetaProvider) -> None:
    message = parse_one(provider, "quick_reply")
    assert (message.content_type, message.text, message.provider_message_id) == ("button", "title", "wamid.xsidjw")


def test_reaction_and_its_removal(provider: MetaProvider) -> None:
    message = parse_one(provider, "reaction")
    assert (message.content_type, message.text) == ("reaction", "😮")
    # Removing a reaction is nothing to answer.
    assert provider.parse(signed(fixture("unreaction"))) == []


def test_order(provider: MetaProvider) -> None:
    message = parse_one(provider, "order")
    assert message.content_type == "order"
    assert message.text == "3 x HAMBURGER @ 30 ILS; 2 x FRENCH_FRIES @ 35 ILS; 2 x SODA @ 10 ILS"


def test_unsupported_and_errored_messages_are_stored_with_their_type(provider: MetaProvider) -> None:
    unsupported = parse_one(provider, "unsupported")
    assert (unsupported.content_type, unsupported.text) == ("unsupported", "")
    errored = parse_one(provider, "interactive_error")
    assert (errored.content_type, errored.text, errored.provider_message_id) == (
        "interactive",
        "",
        "wamid.wegrchytvwcggt=",
    )


def test_referral_text_and_business_scoped_sender(provider: MetaProvider) -> None:
    assert parse_one(provider, "referral").text == "BODY"
    # `from` is kept when present; the BSUID names the customer too.
    message = parse_one(provider, "quick_reply_bsuid")
    assert (message.chat_id, message.contact_name) == ("972987654321", "Test Name")
    body = json.loads(fixture("quick_reply_bsuid"))
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
    only_bsuid = provider.parse(signed(json.dumps(body).encode()))
    assert [m.chat_id for m in only_bsuid] == ["US.13491208655302741918"]


@pytest.mark.parametrize("name", ["system_number_change", "user_preferences", "webhook_errors"])
def test_nothing_to_answer(provider: MetaProvider, name: str) -> None:
    assert provider.parse(signed(fixture(name))) == []


def test_another_numbers_messages_are_not_ours(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    other = MetaProvider(settings(phone_number_id="999999999999999"), http, redis)
    assert other.parse(signed(fixture("text"))) == []


# --- statuses and echoes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_sent", DeliveryStatus.SENT),
        ("status_delivered", DeliveryStatus.DELIVERED),
        ("status_read", DeliveryStatus.READ),
        ("status_played", DeliveryStatus.READ),
    ],
)
def test_statuses(provider: MetaProvider, name: str, status: DeliveryStatus) -> None:
    update = parse_one(provider, name)
    assert isinstance(update, StatusUpdate)
    assert (update.provider_message_id, update.status, update.error) == ("wamid.xyzxyz", status, None)
    assert update.idempotency_key is None


def test_status_carries_our_key_back(provider: MetaProvider) -> None:
    update = parse_one(provider, "status_with_tracker")
    assert (update.status, update.idempotency_key) == (DeliveryStatus.SENT, "some data")


def failed_status(code: int, title: str, details: str) -> bytes:
    body = json.loads(fixture("status_failed"))
    error = body["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]
    error.update({"code": code, "title": title, "message": title, "error_data": {"details": details}})
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "title"),
    [
        (130472, None),
        (131047, "Re-engagement message"),
        (131026, "Message Undeliverable"),
        (130429, "Rate limit hit"),
        (131056, "(Business Account, Consumer Account) pair rate limit hit"),
    ],
)
def test_failed_statuses_keep_meta_error(provider: MetaProvider, code: int, title: str | None) -> None:
    body = fixture("status_failed") if title is None else failed_status(code, title, "details of the failure")
    [update] = provider.parse(signed(body))
    assert (update.status, update.error_code) == (DeliveryStatus.FAILED, str(code))
    assert update.error_description
    assert update.error_description.startswith(title or "User's number is part")


def test_smb_echo_is_a_message_the_business_wrote(provider: MetaProvider) -> None:
    echo = parse_one(provider, "echo_text")
    assert isinstance(echo, EchoMessage)
    assert (echo.chat_id, echo.text, echo.content_type) == ("<WHATSAPP_USER_PHONE_NUMBER>", "Test message", "text")
    assert echo.provider_message_id == "<WHATSAPP_MESSAGE_ID>"
    # A message the business deleted from the app is no reply.
    assert provider.parse(signed(fixture("echo_revoke"))) == []


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"object": "whatsapp_business_account", "entry": {}}', b"[" * 100_000]
)
def test_malformed_bodies(provider: MetaProvider, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        provider.parse(signed(body))


def test_other_objects_and_junk_items_are_acknowledged(provider: MetaProvider) -> None:
    assert provider.parse(signed(b'{"object": "page", "entry": []}')) == []
    junk = {
        "object": "whatsapp_business_account",
        "entry": [
            1,
            {
                "changes": [
                    None,
                    {"field": "messages", "value": {"messages": [1, {"id": "", "from": "1"}], "statuses": [{}]}},
                ]
            },
        ],
    }
    assert provider.parse(signed(json.dumps(junk).encode())) == []


# --- sending --------------------------------------------------------------------------------------------------------


async def test_send_text_posts_the_graph_payload(provider: MetaProvider, api: FakeMetaApi) -> None:
    with mocked_meta(api):
        result = await provider.send_text("972987654321", "Hello!", idempotency_key="reply:1:2:0")
    assert result.provider_message_id == api.sent[0].provider_message_id
    assert result.provider_message_id
    assert result.provider_message_id.startswith("wamid.")
    assert api.requests == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "972987654321",
            "type": "text",
            "text": {"body": "Hello!"},
            "biz_opaque_callback_data": "reply:1:2:0",
        }
    ]


async def test_no_idempotency_at_meta_a_resend_is_a_second_message(provider: MetaProvider, api: FakeMetaApi) -> None:
    with mocked_meta(api):
        first = await provider.send_text("972987654321", "Hello!", idempotency_key="reply:1:2:0")
        second = await provider.send_text("972987654321", "Hello!", idempotency_key="reply:1:2:0")
    assert first.provider_message_id != second.provider_message_id
    assert len(api.sent) == 2
    # So the adapter offers nothing to reconcile with but the status webhooks.
    assert provider.duplicate_window == timedelta(0)
    assert not provider.finds_sent
    assert await provider.find_sent("972987654321", "Hello!", since=datetime.now(UTC), exclude=()) is None


async def test_send_to_a_business_scoped_user_id(provider: MetaProvider, api: FakeMetaApi) -> None:
    with mocked_meta(api):
        await provider.send_text("US.13491208655302741918", "Hi", idempotency_key="k:0")
    assert api.requests[0]["recipient"] == "US.13491208655302741918"
    assert "to" not in api.requests[0]


@pytest.mark.parametrize(
    ("url", "kind", "extra"),
    [
        ("https://cdn.example.com/p/chair.jpg", "image", {"caption": "Chair, 120 EUR"}),
        ("https://cdn.example.com/p/chair", "image", {"caption": "Chair, 120 EUR"}),
        (
            "https://bot.example.com/q/Q-17.pdf?sig=abc",
            "document",
            {"caption": "Chair, 120 EUR", "filename": "Q-17.pdf"},
        ),
        ("https://cdn.example.com/v/demo.mp4", "video", {"caption": "Chair, 120 EUR"}),
    ],
)
async def test_send_media(provider: MetaProvider, api: FakeMetaApi, url: str, kind: str, extra: dict[str, str]) -> None:
    assert media_kind(url)[0] == kind
    with mocked_meta(api):
        await provider.send_media("972987654321", url, idempotency_key="img:1:0", caption="Chair, 120 EUR")
    [request] = api.requests
    assert (request["type"], request[kind]) == (kind, {"link": url, **extra})


async def test_audio_caption_goes_first_as_text(provider: MetaProvider, api: FakeMetaApi) -> None:
    with mocked_meta(api):
        await provider.send_media("972987654321", "https://x.test/a.ogg", idempotency_key="a:0", caption="Listen")
    assert [(r["type"], r["biz_opaque_callback_data"]) for r in api.requests] == [
        ("text", "a:0:caption"),
        ("audio", "a:0"),
    ]


async def test_send_template(http: httpx.AsyncClient, redis: ArqRedis, api: FakeMetaApi) -> None:
    with_template = MetaProvider(settings(window_template="reopen_chat:ru"), http, redis)
    assert with_template.has_window_template
    with mocked_meta(api):
        await with_template.send_template("972987654321", idempotency_key="reply:1:2:0:template")
    assert api.requests[0]["template"] == {"name": "reopen_chat", "language": {"code": "ru"}}
    assert MetaProvider(settings(window_template="reopen_chat"), http, redis).has_window_template
    bare = MetaProvider(settings(), http, redis)
    assert not bare.has_window_template
    with pytest.raises(ProviderNotConfiguredError):
        await bare.send_template("972987654321", idempotency_key="k")


async def test_unconfigured_sends_fail_permanently(http: httpx.AsyncClient, redis: ArqRedis) -> None:
    with pytest.raises(ProviderNotConfiguredError):
        await MetaProvider(settings(access_token=SecretStr("")), http, redis).send_text("1", "x", idempotency_key="k")


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (graph_error(131047), WindowClosedError, None),
        (graph_error(131050), OptedOutError, None),
        (graph_error(130429), RateLimitedError, 1.0),
        (graph_error(131056), RateLimitedError, 6.0),
        (graph_error(80007), RateLimitedError, 60.0),
        (graph_error(131000, status=500), RetryableProviderError, STATUS_GRACE_SECONDS),
        ((503, {}), RetryableProviderError, STATUS_GRACE_SECONDS),
        ((429, {}), RateLimitedError, 5.0),
        (graph_error(131026), PermanentProviderError, None),
        (graph_error(131009), PermanentProviderError, None),
        (graph_error(190, status=401), PermanentProviderError, None),
    ],
)
async def test_graph_errors_map_to_the_taxonomy(
    provider: MetaProvider, api: FakeMetaApi, reply: Any, error: type[Exception], retry_after: float | None
) -> None:
    api.fail_next.append(reply)
    with mocked_meta(api), pytest.raises(error) as excinfo:
        await provider.send_text("972987654321", "Hello!", idempotency_key="k:0")
    assert type(excinfo.value) is error
    assert getattr(excinfo.value, "retry_after", None) == retry_after
    if reply[1]:
        assert excinfo.value.code == str(reply[1]["error"]["code"])  # type: ignore[attr-defined]


async def test_network_failure_and_lost_answer_are_retryable(provider: MetaProvider, api: FakeMetaApi) -> None:
    api.fail_next.append(NETWORK_ERROR)
    api.lose_answer_next = 1
    with mocked_meta(api):
        with pytest.raises(RetryableProviderError):
            await provider.send_text("972987654321", "Hello!", idempotency_key="k:0")
        with pytest.raises(RetryableProviderError) as excinfo:
            await provider.send_text("972987654321", "Hello!", idempotency_key="k:0")
    # The second one went out all the same: only its status webhook (with our key) can tell, so the retry waits
    # long enough for that status to arrive first.
    assert [s.key for s in api.lost] == ["k:0"]
    assert excinfo.value.retry_after == STATUS_GRACE_SECONDS


# --- pacing ---------------------------------------------------------------------------------------------------------


async def test_pair_rate_limit_holds_a_send_before_it_reaches_meta(
    http: httpx.AsyncClient, redis: ArqRedis, api: FakeMetaApi
) -> None:
    provider = MetaProvider(settings(pair_interval_seconds=6, pair_burst=3), http, redis)
    with mocked_meta(api):
        for index in range(3):
            await provider.send_text("972987654321", f"part {index}", idempotency_key=f"k:{index}")
        with pytest.raises(RateLimitedError) as excinfo:
            await provider.send_text("972987654321", "part 3", idempotency_key="k:3")
        # Another customer is not affected.
        await provider.send_text("972900000000", "hello", idempotency_key="other:0")
    assert excinfo.value.code == "131056"
    assert excinfo.value.retry_after is not None
    assert 0 < excinfo.value.retry_after <= 6
    assert [r["text"]["body"] for r in api.requests] == ["part 0", "part 1", "part 2", "hello"]


async def test_number_throughput_is_shared_and_bounded(
    http: httpx.AsyncClient, redis: ArqRedis, api: FakeMetaApi
) -> None:
    # A limit so low that the sixth send in the same instant would wait longer than the adapter accepts.
    provider = MetaProvider(settings(max_sends_per_second=0.1, pair_interval_seconds=0), http, redis)
    other_process = MetaProvider(settings(max_sends_per_second=0.1, pair_interval_seconds=0), http, redis)
    with mocked_meta(api):
        await provider.send_text("972900000001", "a", idempotency_key="a:0")
        with pytest.raises(RateLimitedError) as excinfo:
            await other_process.send_text("972900000002", "b", idempotency_key="b:0")
    assert excinfo.value.code == "130429"
    assert len(api.requests) == 1


# --- settings -------------------------------------------------------------------------------------------------------


def test_settings_read_the_flat_meta_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from salesbot.settings import Settings

    assert Settings().meta.api_url == "https://graph.facebook.com"
    assert not Settings().meta.enabled
    for name, value in {
        # Provider credentials need an explicit mode and real secrets of salesbot's own.
        "SALESBOT_ENV": "development",
        "API_TOKEN": "k7Qp2vX9mZr4TnB8wLs6",
        "SECRET_KEY": "k7Qp2vX9mZr4TnB8wLs6x",
        "ADMIN_PASSWORD": "k7Qp2vX9mZr4TnB8wLs6y",
        "META_API_VERSION": "v22.0",
        "META_ACCESS_TOKEN": "EAAJtoken",
        "META_PHONE_NUMBER_ID": "106540352242922",
        "META_APP_SECRET": "0123456789abcdef0123456789abcdef",
        "META_VERIFY_TOKEN": "verify-me",
        "META_WINDOW_TEMPLATE": "reopen_chat : ar",
    }.items():
        monkeypatch.setenv(name, value)
    meta = Settings().meta
    assert (meta.api_version, meta.phone_number_id, meta.enabled) == ("v22.0", "106540352242922", True)
    assert meta.template_name_and_language == ("reopen_chat", "ar")
    assert "EAAJtoken" not in repr(Settings())


def test_production_refuses_a_placeholder_meta_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from salesbot.settings import Settings

    strong = "k7Qp2vX9mZr4TnB8wLs6"
    for name, value in {
        "API_TOKEN": strong,
        "SECRET_KEY": strong + "x",
        "ADMIN_PASSWORD": strong + "y",
        "META_ACCESS_TOKEN": "EAAJtoken",
        "META_PHONE_NUMBER_ID": "106540352242922",
        "META_APP_SECRET": "change-me",
        "META_VERIFY_TOKEN": "0123456789abcdef0123",
    }.items():
        monkeypatch.setenv(name, value)
    production = {
        "salesbot_env": "production",
        "database_url": "postgresql+asyncpg://x@db/x",
        "redis_url": "redis://r",
        "conversation": {"playbook_path": "/etc/salesbot/playbook.yaml"},
    }
    with pytest.raises(ValidationError, match="META_APP_SECRET is a placeholder"):
        Settings(**production)
    monkeypatch.setenv("META_APP_SECRET", "0123456789abcdef0123456789abcdef")
    assert Settings(**production).meta.enabled
