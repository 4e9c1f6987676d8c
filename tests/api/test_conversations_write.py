"""PATCH /conversations/{id} and POST /conversations/{id}/messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot import queues
from salesbot.models import (
    Author,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Message,
    Owner,
    SalesStage,
)
from tests.reporting.factories import add_message, make_chat

Sessionmaker = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def state(sessionmaker: Sessionmaker, conversation_id: int) -> tuple[Conversation, Customer]:
    async with sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        customer = await session.get(Customer, conversation.customer_id)
        assert customer is not None
        return conversation, customer


def error_fields(response: httpx.Response) -> set[tuple[str, ...]]:
    assert response.status_code == 422, response.text
    return {tuple(str(part) for part in error["loc"]) for error in response.json()["detail"]}


async def test_patch_applies_every_field(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session, stage=SalesStage.NEEDS_ANALYSIS, name="old name", updated_at=T0)
        pending = await add_message(session, chat, "draft", author=Author.BOT, status=DeliveryStatus.PENDING)
        await session.commit()
    conversation_id = chat.conversation.id

    response = await api.patch(
        f"/api/v1/conversations/{conversation_id}",
        json={"stage": "solution", "owner": "human", "customer_name": "  Dana Smith  "},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stage"], body["owner"], body["customer"]["name"]) == ("solution", "human", "Dana Smith")
    assert body["owner_until"] is not None
    conversation, customer = await state(sessionmaker, conversation_id)
    assert (conversation.sales_stage, conversation.owner, customer.name) == (
        SalesStage.SOLUTION,
        Owner.HUMAN,
        "Dana Smith",
    )
    assert conversation.updated_at > T0
    async with sessionmaker() as session:
        draft = await session.get(Message, pending.id)
        assert draft is not None
        assert draft.delivery_status is DeliveryStatus.CANCELLED

    response = await api.patch(f"/api/v1/conversations/{conversation_id}", json={"owner": "bot", "status": "closed"})
    assert response.status_code == 200
    conversation, _ = await state(sessionmaker, conversation_id)
    assert (conversation.owner, conversation.owner_until, conversation.status) == (
        Owner.BOT,
        None,
        ConversationStatus.CLOSED,
    )

    # Reopening works while the customer has no other active conversation.
    assert (await api.patch(f"/api/v1/conversations/{conversation_id}", json={"status": "active"})).status_code == 200
    conversation, _ = await state(sessionmaker, conversation_id)
    assert conversation.status is ConversationStatus.ACTIVE


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (SalesStage.GREETING, "solution"),
        (SalesStage.QUALIFYING, "greeting"),
        (SalesStage.CLOSING, "quoting"),
        (SalesStage.COMPANY_DETAILS, "closing"),
    ],
)
async def test_an_invalid_transition_is_a_422_naming_stage_and_changes_nothing(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, current: SalesStage, target: str
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session, stage=current, name="keep")
        await session.commit()
    response = await api.patch(
        f"/api/v1/conversations/{chat.conversation.id}",
        json={"stage": target, "customer_name": "changed", "owner": "human"},
    )
    assert error_fields(response) == {("body", "stage")}
    assert f"'{current.value}'" in response.json()["detail"][0]["msg"]
    conversation, customer = await state(sessionmaker, chat.conversation.id)
    assert (conversation.sales_stage, conversation.owner, customer.name) == (current, Owner.BOT, "keep")


async def test_valid_transitions_follow_the_funnel(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    url = f"/api/v1/conversations/{chat.conversation.id}"
    path = [
        "qualifying",
        "needs_analysis",
        "qualifying",
        "needs_analysis",
        "solution",
        "company_details",
        "quoting",
        "closing",
    ]
    for stage in path:
        response = await api.patch(url, json={"stage": stage})
        assert response.status_code == 200, (stage, response.text)
        assert response.json()["stage"] == stage
    # Staying where it is, is not a transition.
    assert (await api.patch(url, json={"stage": "closing"})).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": "negotiating"}, ("body", "stage")),
        ({"owner": "robot"}, ("body", "owner")),
        ({"status": "archived"}, ("body", "status")),
        ({"stage": None}, ("body", "stage")),
        ({"customer_name": ""}, ("body", "customer_name")),
        ({"customer_name": "x" * 201}, ("body", "customer_name")),
        ({"customer_name": "bad\u0000name"}, ("body", "customer_name")),
        ({"unknown": 1}, ("body", "unknown")),
        ({}, ("body",)),
    ],
)
async def test_bad_patch_bodies_are_422_naming_the_field(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, body: dict[str, object], field: tuple[str, ...]
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    assert field in error_fields(await api.patch(f"/api/v1/conversations/{chat.conversation.id}", json=body))


async def test_patch_of_a_non_object_body_is_422(api: httpx.AsyncClient) -> None:
    response = await api.patch(
        "/api/v1/conversations/1", content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    assert ("body",) in error_fields(response)
    response = await api.patch(
        "/api/v1/conversations/1", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_reopening_while_another_conversation_is_active_is_a_409(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        old = await make_chat(session, status=ConversationStatus.CLOSED)
        session.add(Conversation(customer_id=old.customer.id, channel=old.conversation.channel))
        await session.commit()
    response = await api.patch(f"/api/v1/conversations/{old.conversation.id}", json={"status": "active"})
    assert response.status_code == 409
    assert "another active conversation" in response.json()["detail"]


async def test_patch_and_post_on_an_unknown_conversation_are_404(api: httpx.AsyncClient) -> None:
    assert (await api.patch("/api/v1/conversations/31337", json={"owner": "human"})).status_code == 404
    assert (await api.post("/api/v1/conversations/31337/messages", json={"text": "hi"})).status_code == 404


async def test_a_manager_message_is_queued_through_the_outbox(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, redis: ArqRedis
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    conversation_id = chat.conversation.id
    response = await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Hi, Anna here."})
    assert response.status_code == 201, response.text
    [part] = response.json()
    assert (part["author"], part["direction"], part["text"], part["delivery_status"]) == (
        "manager",
        "outbound",
        "Hi, Anna here.",
        "pending",
    )
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Message).where(Message.conversation_id == conversation_id))).all()
    assert [m.id for m in stored] == [part["id"]]
    conversation, _ = await state(sessionmaker, conversation_id)
    assert conversation.owner is Owner.HUMAN
    assert conversation.owner_until is not None
    assert conversation.owner_until - datetime.now(UTC) > timedelta(hours=11)
    assert [(job.function, job.args) for job in await redis.queued_jobs(queue_name=queues.MESSAGING)] == [
        ("deliver_outbox", (conversation_id,))
    ]


async def test_a_long_manager_message_is_split_in_order(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    text = "\n\n".join(f"Paragraph {index}: " + "word " * 200 for index in range(6))
    response = await api.post(f"/api/v1/conversations/{chat.conversation.id}/messages", json={"text": text[:4096]})
    assert response.status_code == 201
    parts = response.json()
    assert len(parts) > 1
    assert [p["part_index"] for p in parts] == list(range(len(parts)))


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 4097}, {"text": 5}, {"text": "a\u0000b"}, {"text": "a", "b": 1}],
)
async def test_bad_manager_messages_are_422_and_queue_nothing(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, redis: ArqRedis, body: dict[str, object]
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    response = await api.post(f"/api/v1/conversations/{chat.conversation.id}/messages", json=body)
    assert response.status_code == 422
    assert any(error["loc"][0] == "body" for error in response.json()["detail"])
    async with sessionmaker() as session:
        assert (await session.scalars(select(Message))).all() == []
    assert await redis.queued_jobs(queue_name=queues.MESSAGING) == []
