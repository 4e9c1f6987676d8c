"""The Meta channel end to end in one process: the real app's `/webhooks/meta`, PostgreSQL, Redis, a real arq
worker and the fake Graph API. Statuses, echoes and lost send answers reach the database like on the other
providers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from salesbot.messaging.meta import compute_signature
from salesbot.models import Author, Channel, DeliveryStatus, Direction, Owner
from salesbot.models._columns import utcnow
from tests.fakes.meta_api import status_webhook
from tests.fakes.pipeline import (
    META_APP_SECRET,
    META_PHONE_NUMBER_ID,
    META_VERIFY_TOKEN,
    Pipeline,
    pipeline,
    pipeline_overrides,
)
from tests.fakes.provider_api import Sent

__all__ = ["pipeline", "pipeline_overrides"]

FIXTURES = Path(__file__).parent.parent / "fixtures" / "meta"
CUSTOMER = "972987654321"


def fixture(name: str, *, message_id: str | None = None) -> dict[str, Any]:
    """A verbatim payload addressed to the pipeline's number (optionally with its own message id)."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    for entry in body["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            value.setdefault("metadata", {})["phone_number_id"] = META_PHONE_NUMBER_ID
            for key in ("messages", "message_echoes"):
                for item in value.get(key, []):
                    if message_id is not None:
                        item["id"] = message_id
    return body


def text_message(text: str, message_id: str) -> dict[str, Any]:
    body = fixture("text", message_id=message_id)
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = text
    return body


async def post(pipeline: Pipeline, body: dict[str, Any] | bytes, *, signature: str | None = "valid") -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if signature == "valid":
        headers["x-hub-signature-256"] = compute_signature(META_APP_SECRET, raw)
    elif signature is not None:
        headers["x-hub-signature-256"] = signature
    return await pipeline.client.post("/webhooks/meta", content=raw, headers=headers)


async def api_messages(pipeline: Pipeline, conversation_id: int) -> list[dict[str, Any]]:
    token = pipeline.resources.settings.auth.api_token.get_secret_value()
    response = await pipeline.client.get(
        f"/api/v1/conversations/{conversation_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_verification_handshake(pipeline: Pipeline) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = await pipeline.client.get("/webhooks/meta", params=query)
    assert (response.status_code, response.text) == (200, "1158201444")
    assert response.headers["content-type"].startswith("text/plain")
    for bad in ({"hub.verify_token": "wrong"}, {"hub.mode": "unsubscribe"}):
        assert (await pipeline.client.get("/webhooks/meta", params={**query, **bad})).status_code == 403
    assert (await pipeline.client.get("/webhooks/meta")).status_code == 403
    assert (await pipeline.client.get("/webhooks/meta", params={**query, "hub.challenge": ""})).status_code == 400


@pytest.mark.parametrize("signature", [None, "", "sha256=" + "0" * 64, compute_signature("not-the-secret", b"{}")])
async def test_unsigned_or_badly_signed_webhooks_change_nothing(pipeline: Pipeline, signature: str | None) -> None:
    response = await post(pipeline, fixture("text"), signature=signature)
    assert response.status_code == 403
    assert await pipeline.messages() == []


async def test_signed_message_is_stored_once_and_answered_through_the_graph_api(pipeline: Pipeline) -> None:
    body = fixture("text")
    responses = [await post(pipeline, body) for _ in range(3)]  # Meta redelivers
    assert [(r.status_code, r.json()) for r in responses] == [(200, {"ok": True})] * 3
    [message] = await pipeline.messages()
    assert (message.channel, message.author, message.text) == (Channel.META, Author.CUSTOMER, "Body Text")
    [customer] = await pipeline.customers()
    assert (customer.chat_id, customer.name) == (CUSTOMER, "Test Name")

    await pipeline.worker.drain()

    [request] = pipeline.meta_api.requests
    assert (request["to"], request["type"], request["text"]) == (CUSTOMER, "text", {"body": "Answer to: Body Text"})
    [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
    assert request["biz_opaque_callback_data"] == reply.idempotency_key
    assert (reply.delivery_status, reply.provider_message_id) == (
        DeliveryStatus.SENT,
        pipeline.meta_api.sent[0].provider_message_id,
    )


async def test_every_message_type_is_stored_and_answered_once(pipeline: Pipeline) -> None:
    names = [
        "text", "image", "video", "document", "audio", "voice", "sticker", "location", "contacts",
        "button_reply", "list_reply", "quick_reply", "reaction", "order", "unsupported", "interactive_error",
    ]  # fmt: skip
    for index, name in enumerate(names):
        assert (await post(pipeline, fixture(name, message_id=f"wamid.type{index}"))).status_code == 200
    # Nothing to answer: a removed reaction, a number change, marketing preferences, webhook-level errors.
    for name in ("unreaction", "system_number_change", "user_preferences", "webhook_errors"):
        assert (await post(pipeline, fixture(name, message_id="wamid.nothing"))).status_code == 200

    stored = await pipeline.messages()
    assert [m.content_type for m in stored] == [
        "text", "image", "video", "document", "audio", "audio", "sticker", "location", "contacts",
        "interactive", "interactive", "button", "reaction", "order", "unsupported", "interactive",
    ]  # fmt: skip
    assert stored[1].media == [{"url": "https://graph.meta.test/v21.0/65463453", "content_type": "image/jpeg"}]
    assert len(await pipeline.conversations()) == 1
    await pipeline.worker.drain()
    # One burst, one agent run, one reply.
    assert len(pipeline.generator.calls) == 1
    assert len(pipeline.meta_api.sent) == 1


async def test_statuses_move_the_reply_forward_visibly_in_the_api(pipeline: Pipeline) -> None:
    await post(pipeline, fixture("text"))
    await pipeline.worker.drain()
    [sent] = pipeline.meta_api.sent
    [conversation] = await pipeline.conversations()

    seen = []
    for status in ("delivered", "sent", "read", "delivered"):  # late and repeated statuses never move it back
        body = status_webhook(META_PHONE_NUMBER_ID, sent.provider_message_id, status, CUSTOMER, sent.key)
        assert (await post(pipeline, body)).status_code == 200
        [reply] = [m for m in await api_messages(pipeline, conversation.id) if m["direction"] == "outbound"]
        seen.append(reply["delivery_status"])
    assert seen == ["delivered", "delivered", "read", "read"]


async def test_failed_status_marks_the_reply_failed_for_a_manager(pipeline: Pipeline) -> None:
    await post(pipeline, fixture("text"))
    await pipeline.worker.drain()
    [sent] = pipeline.meta_api.sent
    body = fixture("status_failed")
    item = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    item["id"] = sent.provider_message_id
    item["errors"][0].update(
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
        }
    )
    assert (await post(pipeline, body)).status_code == 200
    [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
    assert reply.delivery_status is DeliveryStatus.FAILED
    assert reply.error is not None
    assert reply.error.startswith("131047: Re-engagement message")
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention


async def _eventually_lost(pipeline: Pipeline) -> Sent:
    for _ in range(500):
        if pipeline.meta_api.lost:
            [lost] = pipeline.meta_api.lost
            return lost
        await asyncio.sleep(0.01)
    raise AssertionError("the fake never accepted the send")


async def test_a_lost_send_answer_is_reconciled_by_the_status_webhook_not_resent(pipeline: Pipeline) -> None:
    """Meta took the message but its answer never arrived, so the row has no wamid and waits for a retry. The
    status webhook carries our key back (`biz_opaque_callback_data`): it attaches the wamid to the row and moves
    it forward, and the retry (held back for STATUS_GRACE_SECONDS after an unanswered send) finds nothing left
    to send. Meta has no idempotency key: a resend would be a second message to the customer."""
    pipeline.meta_api.lose_answer_next = 1
    await post(pipeline, fixture("text"))
    await pipeline.worker.start()
    try:
        lost = await _eventually_lost(pipeline)
        [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
        assert (reply.delivery_status, reply.provider_message_id) == (DeliveryStatus.PENDING, None)
        body = status_webhook(META_PHONE_NUMBER_ID, lost.provider_message_id, "delivered", CUSTOMER, lost.key)
        assert (await post(pipeline, body)).status_code == 200
        [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
        assert (reply.delivery_status, reply.provider_message_id) == (
            DeliveryStatus.DELIVERED,
            lost.provider_message_id,
        )
        await pipeline.worker.idle()  # the scheduled retry runs
    finally:
        await pipeline.worker.stop()
    assert len(pipeline.meta_api.sent) == 1
    [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
    assert reply.delivery_status is DeliveryStatus.DELIVERED


async def test_smb_echo_is_a_manager_reply_that_silences_the_bot(pipeline: Pipeline) -> None:
    await post(pipeline, text_message("Hello", "wamid.first"))
    await pipeline.worker.drain()
    assert len(pipeline.meta_api.sent) == 1

    echo = fixture("echo_text", message_id="wamid.from-the-business-app")
    item = echo["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    # The takeover lasts HUMAN_TAKEOVER_HOURS from when the manager wrote: now.
    now = str(int(utcnow().timestamp()))
    item.update({"from": "15550783881", "to": CUSTOMER, "to_user_id": "US.13491208655302741918", "timestamp": now})
    item["text"]["body"] = "Hi, Anna here, I'll take it from here"
    assert (await post(pipeline, echo)).status_code == 200
    await post(pipeline, text_message("Great, Anna: 40 chairs please", "wamid.second"))
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until is not None
    assert conversation.owner_until > utcnow()
    assert len(pipeline.generator.calls) == 1
    assert len(pipeline.meta_api.sent) == 1
    authors = [(m.author, m.text) for m in await pipeline.messages(direction=Direction.OUTBOUND)]
    assert (Author.MANAGER, "Hi, Anna here, I'll take it from here") in authors


async def test_long_reply_is_split_into_4096_character_parts(pipeline: Pipeline) -> None:
    sentence = "Our chairs are made of oak and come with a ten-year warranty. "
    pipeline.generator.reply = lambda request: sentence * 150  # about 9300 characters
    await post(pipeline, fixture("text"))
    await pipeline.worker.drain()
    bodies = [request["text"]["body"] for request in pipeline.meta_api.requests]
    assert len(bodies) == 3
    assert all(len(body) <= 4096 for body in bodies)
    assert " ".join(bodies) == (sentence * 150).strip()
