from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from salesbot.messaging.base import (
    EchoMessage,
    InboundMessage,
    MalformedWebhookError,
    PermanentProviderError,
    ProviderNotConfiguredError,
    RateLimitedError,
    RetryableProviderError,
    StatusUpdate,
    WebhookRejectedError,
    WebhookRequest,
    WindowClosedError,
)
from salesbot.messaging.wazzup import WazzupProvider, decode_chat_id, encode_chat_id
from salesbot.models import DeliveryStatus
from salesbot.settings import WazzupSettings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "wazzup"
API = "https://wazzup.test/v3"
CHANNEL = "b96a999e-06f5-4cac-8413-ba999993f981"
SECRET = "s3cret-path-value"


def make(**overrides: object) -> WazzupProvider:
    values: dict[str, object] = {
        "api_url": API,
        "api_key": SecretStr("33a817cbc1504bd5885574d8f0290cd3"),
        "channel_id": CHANNEL,
        "webhook_secret": SecretStr(SECRET),
    }
    values.update(overrides)
    return WazzupProvider(WazzupSettings(**values), httpx.AsyncClient())  # type: ignore[arg-type]


def request(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return WebhookRequest(
        path=f"/webhooks/wazzup/{secret}", query="", headers={}, body=body, path_params={"secret": secret}
    )


def test_verify_compares_the_path_secret() -> None:
    provider = make()
    provider.verify(request(b"{}"))
    for secret in ("wrong", "", "s3cret-path-valu", "s3cret-path-value-"):
        with pytest.raises(WebhookRejectedError) as excinfo:
            provider.verify(request(b"{}", secret))
        assert excinfo.value.status_code == 404
    with pytest.raises(WebhookRejectedError):
        make(webhook_secret=SecretStr("")).verify(request(b"{}", ""))


def test_parse_documented_payloads() -> None:
    provider = make()
    assert provider.parse(request((FIXTURES / "test.json").read_bytes())) == []
    [text] = provider.parse(request((FIXTURES / "inbound_text.json").read_bytes()))
    assert isinstance(text, InboundMessage)
    assert (text.chat_id, text.text, text.contact_name) == ("79999999999", "Сколько стоит доставка?", "Иван")
    assert text.sent_at is not None
    assert text.sent_at.year == 2025
    [image] = provider.parse(request((FIXTURES / "inbound_image.json").read_bytes()))
    assert isinstance(image, InboundMessage)
    assert image.content_type == "image"
    assert image.media[0].url.startswith("https://store.wazzup24.com/")
    assert image.contact_name is None  # Wazzup put the number itself into `name`
    [echo] = provider.parse(request((FIXTURES / "echo_manager.json").read_bytes()))
    assert isinstance(echo, EchoMessage)
    assert (echo.author_name, echo.text) == ("Анна", "Добрый день, это менеджер Анна")
    [status] = provider.parse(request((FIXTURES / "statuses.json").read_bytes()))
    assert status == StatusUpdate(
        channel=status.channel,
        provider_message_id="be3dc577-60c4-4fc8-83a5-8c358e0bfe15",
        status=DeliveryStatus.DELIVERED,
    )


def test_parse_mixed_body_skips_edits_and_reads_status_errors() -> None:
    events = make().parse(request((FIXTURES / "messages_and_statuses.json").read_bytes()))
    messages = [e for e in events if isinstance(e, InboundMessage)]
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert [m.text for m in messages] == ["Есть в наличии?"]
    assert [(s.status, s.error) for s in statuses] == [
        (DeliveryStatus.READ, None),
        (DeliveryStatus.FAILED, "24_HOURS_EXCEEDED: the 24-hour WABA dialogue is closed"),
    ]


def test_parse_ignores_other_channels_and_broken_items() -> None:
    body = {
        "messages": [
            "garbage",
            {"chatId": "7999"},
            {"messageId": "m1", "chatId": "7999", "channelId": "another-channel", "type": "text", "text": "hi"},
            {
                "messageId": "m2",
                "chatId": "7999",
                "channelId": CHANNEL,
                "chatType": "telegram",
                "type": "text",
                "text": "hi",
            },
        ],
        "statuses": [{"messageId": "x", "status": "edited"}, 5],
    }
    [message] = make().parse(request(json.dumps(body).encode()))
    assert isinstance(message, InboundMessage)
    assert message.chat_id == "telegram:7999"
    assert decode_chat_id(message.chat_id) == ("telegram", "7999")
    assert decode_chat_id(encode_chat_id("whatsapp", "7999")) == ("whatsapp", "7999")


@pytest.mark.parametrize("body", [b"", b"nope", b"null", b'{"statuses": "x"}'])
def test_parse_rejects_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        make().parse(request(body))


@respx.mock
async def test_send_uses_crm_message_id_and_keeps_the_chat_unanswered() -> None:
    route = respx.post(f"{API}/message").mock(
        return_value=httpx.Response(
            201, json={"messageId": "f66c53a6-957a-46b2-b41b-5a2ef4844bcb", "chatId": "79999999999"}
        )
    )
    result = await make().send_text("79999999999", "Здравствуйте!", idempotency_key="reply:1:7:0")
    assert result.provider_message_id == "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer 33a817cbc1504bd5885574d8f0290cd3"
    assert json.loads(sent.content) == {
        "channelId": CHANNEL,
        "chatType": "whatsapp",
        "chatId": "79999999999",
        "text": "Здравствуйте!",
        "crmMessageId": "reply:1:7:0",
        "clearUnanswered": False,
    }


@respx.mock
@pytest.mark.parametrize("code", ["REPEATED_CRM_MESSAGE_ID", "repeatedCrmMessageId"])
async def test_repeated_crm_message_id_means_already_sent(code: str) -> None:
    respx.post(f"{API}/message").mock(return_value=httpx.Response(400, json={"error": code, "description": "dup"}))
    result = await make().send_text("79999999999", "hi", idempotency_key="reply:1:7:0")
    assert (result.already_sent, result.provider_message_id) == (True, None)


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {}, RateLimitedError),
        (500, {"error": "UNKNOWN_ERROR"}, RetryableProviderError),
        (400, {"error": "BAD_CONTACT", "description": "not on WhatsApp"}, PermanentProviderError),
        (400, {"error": "24_HOURS_EXCEEDED"}, WindowClosedError),
        (401, {}, PermanentProviderError),
    ],
)
async def test_vendor_errors_map_to_the_taxonomy(status: int, body: dict[str, object], error: type[Exception]) -> None:
    respx.post(f"{API}/message").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(error):
        await make().send_text("79999999999", "hi", idempotency_key="k:0")


@respx.mock
async def test_transport_errors_are_retryable_and_never_leak_httpx() -> None:
    respx.post(f"{API}/message").mock(side_effect=httpx.ConnectTimeout("timeout"))
    with pytest.raises(RetryableProviderError) as excinfo:
        await make().send_text("79999999999", "hi", idempotency_key="k:0")
    assert not isinstance(excinfo.value, httpx.HTTPError)


@respx.mock
async def test_template_and_configuration() -> None:
    route = respx.post(f"{API}/message").mock(return_value=httpx.Response(201, json={"messageId": "m"}))
    provider = make(transport="wapi", window_template_id="tpl-guid")
    assert provider.window_applies
    assert provider.has_window_template
    await provider.send_template("79999999999", idempotency_key="reply:1:2:0:template")
    assert json.loads(route.calls.last.request.content)["templateId"] == "tpl-guid"
    with pytest.raises(ProviderNotConfiguredError):
        await make().send_template("79999999999", idempotency_key="k")
    with pytest.raises(ProviderNotConfiguredError):
        await make(api_key=SecretStr("")).send_text("79999999999", "hi", idempotency_key="k")
    assert not make().window_applies


def test_parse_skips_oversized_ids_and_strips_nul_characters() -> None:
    body = {
        "messages": [
            {"messageId": "m" * 129, "chatId": "7999", "type": "text", "text": "too long id"},
            {"messageId": "m1", "chatId": "7999", "type": "text", "text": "nul\u0000inside"},
        ]
    }
    [message] = make().parse(request(json.dumps(body).encode()))
    assert isinstance(message, InboundMessage)
    assert message.text == "nulinside"


@respx.mock
@pytest.mark.parametrize(
    ("failure", "maybe_accepted"),
    [
        # The request never left: nothing can have been created.
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("timeout"), False),
        # It left and no answer came back: Wazzup may have taken it.
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("reset"), True),
        # Wazzup's own refusal vs. a gateway that may hide a processed request.
        (httpx.Response(500, json={"error": "UNKNOWN_ERROR"}), False),
        (httpx.Response(503, json={}), False),
        (httpx.Response(429, json={}), False),
        (httpx.Response(502, text="Bad Gateway"), True),
        (httpx.Response(504, text="Gateway Timeout"), True),
    ],
)
async def test_failed_sends_say_whether_the_message_may_have_been_accepted(
    failure: Exception | httpx.Response, maybe_accepted: bool
) -> None:
    route = respx.post(f"{API}/message")
    if isinstance(failure, httpx.Response):
        route.mock(return_value=failure)
    else:
        route.mock(side_effect=failure)
    with pytest.raises(RetryableProviderError) as excinfo:
        await make().send_text("79999999999", "hi", idempotency_key="k:0")
    assert excinfo.value.maybe_accepted is maybe_accepted


def test_wazzup_refuses_repeats_for_60_seconds_and_has_no_lookup() -> None:
    provider = make()
    assert provider.duplicate_window.total_seconds() == 60
    assert provider.finds_sent is False


def test_parse_echo_of_a_template_and_of_an_api_send_with_its_key() -> None:
    item = json.loads((FIXTURES / "echo_manager.json").read_text())["messages"][0]
    template = {**item, "messageId": "11111111-2222-3333-4444-555555555555", "type": "wapi_template"}
    keyed = {**item, "messageId": "66666666-7777-8888-9999-000000000000", "crmMessageId": "reply:4:9:0"}
    body = json.dumps({"messages": [item, template, keyed]}).encode()
    manager, template_echo, keyed_echo = make().parse(
        WebhookRequest(path="/", query="", headers={}, body=body, path_params={"secret": SECRET})
    )
    assert isinstance(manager, EchoMessage)
    assert (manager.is_template, manager.idempotency_key) == (False, None)
    assert isinstance(template_echo, EchoMessage)
    assert template_echo.is_template is True
    assert isinstance(keyed_echo, EchoMessage)
    assert keyed_echo.idempotency_key == "reply:4:9:0"
