from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from salesbot.messaging.base import (
    InboundMessage,
    MalformedWebhookError,
    OptedOutError,
    PermanentProviderError,
    RateLimitedError,
    RetryableProviderError,
    StatusUpdate,
    WebhookRejectedError,
    WebhookRequest,
    WindowClosedError,
)
from salesbot.messaging.twilio import TwilioProvider, compute_signature, signature_matches
from salesbot.models import Channel, DeliveryStatus
from salesbot.settings import TwilioSettings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"
API = "https://twilio.test"
SID = "AC00000000000000000000000000000000"
TOKEN = "twilio-auth-token-for-tests"
MESSAGES = f"{API}/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
async def provider() -> TwilioProvider:
    settings = TwilioSettings(
        api_url=API, account_sid=SID, auth_token=TOKEN, whatsapp_from="whatsapp:+14155238886", max_text_length=1500
    )
    return TwilioProvider(settings, httpx.AsyncClient(), public_base_url="https://bot.example.com")


def signed(body: bytes, *, path: str = "/webhooks/twilio", url: str | None = None) -> WebhookRequest:
    params = parse_qsl(body.decode(), keep_blank_values=True)
    signature = compute_signature(TOKEN, url or f"https://bot.example.com{path}", params)
    return WebhookRequest(path=path, query="", headers={"x-twilio-signature": signature}, body=body)


def test_signature_matches_twilio_documentation_vector() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature_matches("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    # Twilio's validator accepts the URL with the default port added, and a signature made with it.
    assert signature_matches(
        "12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    with_port = compute_signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params)
    assert signature_matches("12345", url, params, with_port)
    assert not signature_matches("12345", url, params[:-1], "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not signature_matches("54321", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


async def test_verify_accepts_signed_requests_and_rejects_the_rest(provider: TwilioProvider) -> None:
    body = (FIXTURES / "inbound_text.txt").read_bytes()
    provider.verify(signed(body))
    for headers in ({}, {"x-twilio-signature": "AAAA"}):
        with pytest.raises(WebhookRejectedError) as excinfo:
            provider.verify(WebhookRequest(path="/webhooks/twilio", query="", headers=headers, body=body))
        assert excinfo.value.status_code == 403
    # Signed for another path: rejected.
    with pytest.raises(WebhookRejectedError):
        provider.verify(signed(body, url="https://bot.example.com/webhooks/twilio/status"))
    # A query string is part of the signed URL.
    request = signed(body, url="https://bot.example.com/webhooks/twilio?tenant=7")
    provider.verify(WebhookRequest(path=request.path, query="tenant=7", headers=request.headers, body=body))


async def test_parse_inbound_and_status(provider: TwilioProvider) -> None:
    [message] = provider.parse(signed((FIXTURES / "inbound_image.txt").read_bytes()))
    assert isinstance(message, InboundMessage)
    assert (message.chat_id, message.content_type, message.contact_name) == ("whatsapp:+14155550123", "image", "Maria")
    assert message.media[0].content_type == "image/jpeg"
    [status] = provider.parse(signed((FIXTURES / "status_failed.txt").read_bytes(), path="/webhooks/twilio/status"))
    assert isinstance(status, StatusUpdate)
    assert (status.status, status.error_code) == (DeliveryStatus.FAILED, "63016")
    assert status.channel is Channel.TWILIO
    # Intermediate states change nothing.
    assert provider.parse(signed(b"MessageSid=SM1&MessageStatus=sending", path="/webhooks/twilio/status")) == []
    with pytest.raises(MalformedWebhookError):
        provider.parse(signed(b"From=whatsapp%3A%2B1&Body=hi"))


@respx.mock
async def test_send_posts_the_form_with_basic_auth(provider: TwilioProvider) -> None:
    route = respx.post(MESSAGES).mock(return_value=httpx.Response(201, json={"sid": "SMabc", "status": "queued"}))
    result = await provider.send_text("whatsapp:+14155550123", "Hello!", idempotency_key="reply:1:2:0")
    assert result.provider_message_id == "SMabc"
    request = route.calls.last.request
    form = dict(parse_qsl(request.content.decode()))
    assert form == {
        "To": "whatsapp:+14155550123",
        "From": "whatsapp:+14155238886",
        "Body": "Hello!",
        "StatusCallback": "https://bot.example.com/webhooks/twilio/status",
    }
    assert request.headers["authorization"].startswith("Basic ")


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"code": 63016, "message": "outside the window"}, WindowClosedError),
        (400, {"code": 21610, "message": "unsubscribed recipient"}, OptedOutError),
        (429, {"code": 20429, "message": "Too Many Requests"}, RateLimitedError),
        (400, {"code": 63018, "message": "rate limit exceeded for channel"}, RateLimitedError),
        (503, {}, RetryableProviderError),
        (400, {"code": 21211, "message": "invalid To"}, PermanentProviderError),
    ],
)
async def test_vendor_errors_map_to_the_taxonomy(
    provider: TwilioProvider, status: int, body: dict[str, object], error: type[Exception]
) -> None:
    respx.post(MESSAGES).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(error) as excinfo:
        await provider.send_text("whatsapp:+14155550123", "Hello!", idempotency_key="k:0")
    if isinstance(excinfo.value, RateLimitedError):
        assert excinfo.value.retry_after is not None
        assert excinfo.value.retry_after >= 5


@respx.mock
async def test_network_failure_is_retryable(provider: TwilioProvider) -> None:
    respx.post(MESSAGES).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(RetryableProviderError):
        await provider.send_text("whatsapp:+14155550123", "Hello!", idempotency_key="k:0")


@respx.mock
async def test_find_sent_matches_body_time_and_unrecorded_sid(provider: TwilioProvider) -> None:
    listed = {
        "messages": [
            {"sid": "SMnew", "body": "Hello!", "date_created": "Sat, 21 Nov 2026 10:00:05 +0000"},
            {"sid": "SMknown", "body": "Hello!", "date_created": "Sat, 21 Nov 2026 10:00:01 +0000"},
            {"sid": "SMold", "body": "Hello!", "date_created": "Fri, 20 Nov 2026 09:00:00 +0000"},
        ]
    }
    route = respx.get(MESSAGES).mock(return_value=httpx.Response(200, json=listed))
    since = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert await provider.find_sent("whatsapp:+1", "Hello!", since=since, exclude={"SMnew"}) == "SMknown"
    assert await provider.find_sent("whatsapp:+1", "Other", since=since, exclude=set()) is None
    assert await provider.find_sent("whatsapp:+1", "Hello!", since=since.replace(day=22), exclude=set()) is None
    assert dict(route.calls.last.request.url.params)["To"] == "whatsapp:+1"


@respx.mock
async def test_find_sent_for_the_template_matches_any_unrecorded_message_since_the_attempt(
    provider: TwilioProvider,
) -> None:
    """The closed-window template is listed under the text Twilio rendered from it, not the reply's text."""
    now = datetime.now(UTC)
    listed = {
        "messages": [
            {"sid": "SMtemplate", "body": "Hello! Reply to continue.", "date_created": format_datetime(now)},
            {"sid": "SMreply", "body": "Our answer", "date_created": format_datetime(now - timedelta(seconds=1))},
        ]
    }
    respx.get(MESSAGES).mock(return_value=httpx.Response(200, json=listed))
    since = now - timedelta(seconds=30)
    assert await provider.find_sent("whatsapp:+1", None, since=since, exclude={"SMreply"}) == "SMtemplate"
    assert await provider.find_sent("whatsapp:+1", "Our reply text", since=since, exclude={"SMreply"}) is None
    assert await provider.find_sent("whatsapp:+1", None, since=since, exclude={"SMreply", "SMtemplate"}) is None
