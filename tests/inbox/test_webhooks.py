"""The webhook inbox through the real app: authenticity, parsing, idempotent persistence, fast answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import func, select

from salesbot import queues
from salesbot.inbox.router import EMPTY_TWIML
from salesbot.messaging.twilio import compute_signature
from salesbot.models import Author, Channel, DeliveryStatus, Direction, Message
from tests.fakes.pipeline import TWILIO_FROM, TWILIO_TOKEN, Pipeline, twilio_params, wazzup_message

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def count_messages(pipeline: Pipeline) -> int:
    async with pipeline.resources.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def turn_jobs(pipeline: Pipeline) -> list[str]:
    ids = await pipeline.redis.zrange(queues.TURNS, 0, -1)
    return [job_id.decode() for job_id in ids if job_id.startswith(b"turn:")]


async def test_wazzup_message_is_stored_and_its_turn_scheduled_before_the_200(pipeline: Pipeline) -> None:
    response = await pipeline.wazzup(fixture_bytes("wazzup/inbound_text.json"))

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    [message] = await pipeline.messages()
    assert (message.channel, message.direction, message.author) == (Channel.WAZZUP, Direction.INBOUND, Author.CUSTOMER)
    assert message.text == "Сколько стоит доставка?"
    assert message.provider_message_id == "caa9f2e4-cce3-424c-86cd-05f9a1f95073"
    assert message.processed_at is None
    [customer] = await pipeline.customers()
    assert (customer.chat_id, customer.name) == ("79999999999", "Иван")
    [conversation] = await pipeline.conversations()
    assert await turn_jobs(pipeline) == [f"turn:{conversation.id}:0"]
    # The inbox never talks to a provider, an LLM or anything else outside.
    assert pipeline.wazzup_api.calls == 0
    assert pipeline.generator.calls == []


async def test_wazzup_registration_probe_is_answered(pipeline: Pipeline) -> None:
    response = await pipeline.wazzup(fixture_bytes("wazzup/test.json"))
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert await count_messages(pipeline) == 0


async def test_wazzup_every_message_type_is_stored(pipeline: Pipeline) -> None:
    response = await pipeline.wazzup(fixture_bytes("wazzup/inbound_all_types.json"))
    assert response.status_code == 200
    stored = await pipeline.messages()
    assert [m.content_type for m in stored] == [
        "audio",
        "video",
        "document",
        "vcard",
        "geo",
        "unsupported",
        "missing_call",
        "wapi_template",
        "brand_new_type",
    ]
    assert stored[0].media == [{"url": "https://store.wazzup24.com/a1/?filename=voice.ogg", "content_type": "audio"}]
    # One chat, one conversation, one scheduled turn for the whole batch.
    assert len(await pipeline.conversations()) == 1
    assert len(await turn_jobs(pipeline)) == 1


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
async def test_wazzup_redelivery_stores_one_message(pipeline: Pipeline, concurrent: bool) -> None:
    body = json.dumps({"messages": [wazzup_message("79990001122", "hello")]}).encode()
    if concurrent:
        responses = await asyncio.gather(*(pipeline.wazzup(body) for _ in range(3)))
    else:
        responses = [await pipeline.wazzup(body) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert await count_messages(pipeline) == 1
    assert len(await turn_jobs(pipeline)) == 1


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
async def test_twilio_redelivery_stores_one_message(pipeline: Pipeline, concurrent: bool) -> None:
    params = twilio_params("whatsapp:+14155550123", "hello")
    if concurrent:
        responses = await asyncio.gather(*(pipeline.twilio(params) for _ in range(3)))
    else:
        responses = [await pipeline.twilio(params) for _ in range(3)]
    for response in responses:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        assert response.text == EMPTY_TWIML
    assert await count_messages(pipeline) == 1


async def test_redelivery_after_redis_loss_is_caught_by_the_database(pipeline: Pipeline) -> None:
    body = json.dumps({"messages": [wazzup_message("79990001122", "hello")]}).encode()
    await pipeline.wazzup(body)
    await pipeline.redis.flushdb()  # claims, burst state and queue gone

    response = await pipeline.wazzup(body)

    assert response.status_code == 200
    assert await count_messages(pipeline) == 1
    assert await turn_jobs(pipeline) == []


async def test_twilio_fixtures_parse_into_messages(pipeline: Pipeline) -> None:
    for name in ("inbound_text", "inbound_image", "button_reply", "location"):
        body = fixture_bytes(f"twilio/{name}.txt")
        params = parse_qsl(body.decode(), keep_blank_values=True)
        response = await pipeline.twilio(params, body=body)
        assert response.status_code == 200, name
    stored = {m.provider_message_id: m for m in await pipeline.messages()}
    assert stored["SM0f3c2b1a9e8d7c6b5a4f3e2d1c0b9a8f7"].text == "Hi! Do you deliver to Austin?"
    image = stored["MM5c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f"]
    assert image.content_type == "image"
    assert image.media[0]["content_type"] == "image/jpeg"
    assert stored["SM88a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5"].text == "Konfirmasi"
    assert stored["SMxxxx"].content_type == "location"
    assert {c.chat_id for c in await pipeline.customers()} == {
        "whatsapp:+14155550123",
        "whatsapp:+6285176810035",
        "whatsapp:+12345678900",
    }


# --- rejected requests change nothing -------------------------------------------------------------------------


async def test_wrong_wazzup_secret_is_404(pipeline: Pipeline) -> None:
    response = await pipeline.wazzup(fixture_bytes("wazzup/inbound_text.json"), secret="not-the-secret")
    assert response.status_code == 404
    assert await count_messages(pipeline) == 0


@pytest.mark.parametrize("signature", [None, "", "c2lnbmF0dXJl", "invalid"], ids=["missing", "empty", "wrong", "junk"])
async def test_bad_twilio_signature_is_403(pipeline: Pipeline, signature: str | None) -> None:
    response = await pipeline.twilio(twilio_params("whatsapp:+14155550123", "hi"), signature=signature)
    assert response.status_code == 403
    assert await count_messages(pipeline) == 0


async def test_twilio_signature_over_another_url_is_403(pipeline: Pipeline) -> None:
    params = twilio_params("whatsapp:+14155550123", "hi")
    forged = compute_signature(TWILIO_TOKEN, "https://evil.example/webhooks/twilio", params)
    response = await pipeline.twilio(params, signature=forged)
    assert response.status_code == 403
    assert await count_messages(pipeline) == 0


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"messages": {"a": 1}}', b"\xff\xfe"],
    ids=["broken", "array", "messages-not-array", "not-utf8"],
)
async def test_malformed_wazzup_body_is_400(pipeline: Pipeline, body: bytes) -> None:
    response = await pipeline.wazzup(body)
    assert response.status_code == 400
    assert response.json()["detail"]
    assert await count_messages(pipeline) == 0


async def test_malformed_twilio_form_is_400(pipeline: Pipeline) -> None:
    response = await pipeline.twilio([], signature="anything", body=b"this is not&&a=form")
    assert response.status_code == 400
    assert await count_messages(pipeline) == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_two_mebibyte_body_is_413(pipeline: Pipeline, chunked: bool) -> None:
    payload = json.dumps({"messages": [wazzup_message("79990001122", "x" * (2 * 1024 * 1024))]}).encode()
    if chunked:

        async def stream() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 64 * 1024):
                yield payload[start : start + 64 * 1024]

        response = await pipeline.client.post(
            "/webhooks/wazzup/whatever", content=stream(), headers={"content-type": "application/json"}
        )
    else:
        response = await pipeline.wazzup(payload)
    assert response.status_code == 413
    assert await count_messages(pipeline) == 0


async def test_console_webhook_validates_input(pipeline: Pipeline) -> None:
    bad = [
        {"text": "hi"},
        {"phone": "not a phone", "text": "hi"},
        {"phone": "+15550100", "text": "   "},
        {"phone": "+15550100", "text": "hi", "name": 5},
    ]
    for body in bad:
        response = await pipeline.client.post("/webhooks/console", json=body)
        assert response.status_code == 400, body
    response = await pipeline.console("+1 (555) 010-0", "hi", name="Dev")
    assert response.status_code == 200
    assert response.json()["ok"] is True
    [customer] = await pipeline.customers()
    assert (customer.channel, customer.chat_id, customer.name) == (Channel.CONSOLE, "+15550100", "Dev")


@pytest.mark.parametrize("pipeline_overrides", [{"root": {"console_enabled": False}}])
async def test_console_webhook_is_404_when_disabled(pipeline: Pipeline) -> None:
    response = await pipeline.console("+15550100", "hi")
    assert response.status_code == 404
    assert await count_messages(pipeline) == 0


# --- statuses -------------------------------------------------------------------------------------------------


async def _outbound(pipeline: Pipeline, provider_message_id: str, channel: Channel) -> int:
    await pipeline.console("+15550100", "seed")  # a conversation to hang the outbound row on
    [conversation] = await pipeline.conversations()
    async with pipeline.resources.sessionmaker() as session:
        row = Message(
            conversation_id=conversation.id,
            channel=channel,
            direction=Direction.OUTBOUND,
            author=Author.BOT,
            text="Our offer",
            provider_message_id=provider_message_id,
            delivery_status=DeliveryStatus.SENT,
            idempotency_key="reply:test:1:0",
        )
        session.add(row)
        await session.commit()
        return row.id


async def _status(pipeline: Pipeline, message_id: int) -> tuple[DeliveryStatus | None, str | None]:
    async with pipeline.resources.sessionmaker() as session:
        row = await session.get(Message, message_id)
        assert row is not None
        return row.delivery_status, row.error


async def test_wazzup_statuses_only_move_forward(pipeline: Pipeline) -> None:
    message_id = await _outbound(pipeline, "be3dc577-60c4-4fc8-83a5-8c358e0bfe15", Channel.WAZZUP)
    body = fixture_bytes("wazzup/messages_and_statuses.json")  # says "read" (+ an edit we ignore)
    assert (await pipeline.wazzup(body)).status_code == 200
    assert await _status(pipeline, message_id) == (DeliveryStatus.READ, None)
    # "delivered" arriving late never moves it back; the duplicate is dropped.
    for _ in range(2):
        assert (await pipeline.wazzup(fixture_bytes("wazzup/statuses.json"))).status_code == 200
    assert await _status(pipeline, message_id) == (DeliveryStatus.READ, None)
    # The edited message in the same body is not stored as a new customer message.
    texts = [m.text for m in await pipeline.messages(direction=Direction.INBOUND)]
    assert texts == ["seed", "Есть в наличии?"]


async def test_twilio_status_callbacks_update_and_flag_failures(pipeline: Pipeline) -> None:
    delivered_id = await _outbound(pipeline, "SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d", Channel.TWILIO)
    for name in ("status_delivered", "status_failed"):
        body = fixture_bytes(f"twilio/{name}.txt")
        response = await pipeline.twilio(
            parse_qsl(body.decode(), keep_blank_values=True), path="/webhooks/twilio/status", body=body
        )
        assert response.status_code == 200
    assert await _status(pipeline, delivered_id) == (DeliveryStatus.DELIVERED, None)
    # The failed callback's message is unknown yet: kept for the moment the send records its id.
    early = await pipeline.redis.keys("sb:outbox:early-status:twilio:*")
    assert len(early) == 1


async def test_unknown_twilio_sender_is_stored_as_given(pipeline: Pipeline) -> None:
    # Business-scoped user ids are not phone-shaped; the chat key is `From` as Twilio sends it.
    response = await pipeline.twilio(twilio_params("whatsapp:BSUID.9f8e7d", "hola"))
    assert response.status_code == 200
    [customer] = await pipeline.customers()
    assert customer.chat_id == "whatsapp:BSUID.9f8e7d"
    assert TWILIO_FROM not in {c.chat_id for c in await pipeline.customers()}


async def test_hostile_strings_are_stored_or_refused_never_a_server_error(pipeline: Pipeline) -> None:
    # NUL characters cannot be stored by PostgreSQL; oversized ids are no provider's. Neither may cause a 5xx.
    naive_now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    body = {
        "messages": [
            wazzup_message("7999\u00000001", "a\u0000b", contact={"name": "N\u0000ame"}, type="te\u0000xt"),
            wazzup_message("79990000002", "ok", message_id="x" * 500),
            wazzup_message("79990000003", "media", contentUri="https://store.wazzup24.com/\u0000f", dateTime=naive_now),
        ],
        "statuses": [{"messageId": "s\u0000id", "status": "read"}, {"messageId": "y" * 500, "status": "read"}],
    }
    response = await pipeline.wazzup(body)
    assert response.status_code == 200
    stored = await pipeline.messages()
    assert sorted(m.text for m in stored) == ["ab", "media"]
    assert all("\x00" not in (m.media[0]["url"] if m.media else "") for m in stored)
    twilio = await pipeline.twilio([("MessageSid", "SM\u0000x"), ("From", "whatsapp:+1"), ("Body", "hi")])
    assert twilio.status_code == 400
    console = await pipeline.console("+15550100", "nul \u0000 inside", name="\u0000")
    assert console.status_code == 200
