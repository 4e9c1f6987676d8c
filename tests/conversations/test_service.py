"""The services the admin panel and the REST API call (they own the unit of work; these only flush)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.conversations import service
from salesbot.kit.errors import AppError, NotFoundError
from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
    Owner,
)
from salesbot.models._columns import utcnow
from salesbot.settings import Settings, TwilioSettings


async def conversation_with_pending_reply(session: AsyncSession) -> Conversation:
    conversation = Conversation(
        customer=Customer(channel=Channel.TWILIO, chat_id="whatsapp:+15550100"), channel=Channel.TWILIO
    )
    session.add(conversation)
    await session.flush()
    session.add(
        Message(
            conversation_id=conversation.id,
            channel=Channel.TWILIO,
            direction=Direction.OUTBOUND,
            author=Author.BOT,
            text="bot draft",
            delivery_status=DeliveryStatus.PENDING,
            idempotency_key=f"reply:{conversation.id}:1:0",
        )
    )
    await session.flush()
    return conversation


async def messages(session: AsyncSession) -> list[Message]:
    query = select(Message).order_by(Message.id).execution_options(populate_existing=True)
    return list(await session.scalars(query))


async def test_take_over_and_hand_back(db_session: AsyncSession) -> None:
    conversation = await conversation_with_pending_reply(db_session)
    taken = await service.take_over(db_session, conversation.id, hours=2)
    assert taken.owner is Owner.HUMAN
    assert taken.owner_until is not None
    assert taken.owner_until > utcnow() + timedelta(hours=1, minutes=59)
    draft = await messages(db_session)
    assert [(row.delivery_status, row.error) for row in draft] == [(DeliveryStatus.CANCELLED, "human_takeover")]

    back = await service.hand_back(db_session, conversation.id)
    assert (back.owner, back.owner_until) == (Owner.BOT, None)
    with pytest.raises(AppError):
        await service.take_over(db_session, conversation.id, hours=0)


async def test_close_conversation_withdraws_bot_replies(db_session: AsyncSession) -> None:
    conversation = await conversation_with_pending_reply(db_session)
    closed = await service.close_conversation(db_session, conversation.id)
    assert closed.status is ConversationStatus.CLOSED
    [row] = await messages(db_session)
    assert row.delivery_status is DeliveryStatus.CANCELLED


async def test_send_manager_message_splits_and_takes_over(db_session: AsyncSession, settings: Settings) -> None:
    conversation = await conversation_with_pending_reply(db_session)
    settings = settings.model_copy(update={"twilio": TwilioSettings(max_text_length=100)})
    text = ("We can deliver on Monday. " * 4).strip() + "\n\n" + "Payment on delivery is fine."
    rows = await service.send_manager_message(db_session, conversation.id, text, settings=settings)

    assert [row.author for row in rows] == [Author.MANAGER, Author.MANAGER]
    assert all(row.delivery_status is DeliveryStatus.PENDING and len(row.text) <= 100 for row in rows)
    assert rows[0].idempotency_key is not None
    assert rows[0].idempotency_key.endswith(":0")
    assert rows[1].idempotency_key == rows[0].idempotency_key[:-1] + "1"
    await db_session.refresh(conversation)
    assert conversation.owner is Owner.HUMAN
    with pytest.raises(AppError):
        await service.send_manager_message(db_session, conversation.id, "   ", settings=settings)


async def test_unknown_conversation_is_not_found(db_session: AsyncSession, settings: Settings) -> None:
    with pytest.raises(NotFoundError):
        await service.take_over(db_session, 999_999, hours=1)
    with pytest.raises(NotFoundError):
        await service.hand_back(db_session, 999_999)
    with pytest.raises(NotFoundError):
        await service.close_conversation(db_session, 999_999)
    with pytest.raises(NotFoundError):
        await service.send_manager_message(db_session, 999_999, "hi", settings=settings)
