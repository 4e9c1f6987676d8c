"""SQL for the simulator: console customers, a phone's transcript, and whether a turn is under way."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
)


async def console_customers(session: AsyncSession, *, limit: int) -> Sequence[tuple[str, str | None, datetime | None]]:
    """(phone, name, last activity) of console customers, most recent first."""
    last_activity = func.max(Conversation.last_message_at)
    stmt = (
        select(Customer.chat_id, Customer.name, last_activity)
        .outerjoin(Conversation, Conversation.customer_id == Customer.id)
        .where(Customer.channel == Channel.CONSOLE)
        .group_by(Customer.id)
        .order_by(last_activity.desc().nulls_last(), Customer.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in (await session.execute(stmt)).all()]


async def transcript(session: AsyncSession, chat_id: str, *, limit: int) -> Sequence[Message]:
    """The latest `limit` messages of every conversation of this console customer, oldest first."""
    stmt = (
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(Customer.channel == Channel.CONSOLE, Customer.chat_id == chat_id)
        .order_by(Message.created_at.desc(), Message.part_index.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.execute(stmt)).scalars().all()))


async def turn_under_way(session: AsyncSession, chat_id: str) -> bool:
    """A customer message waits for its turn, or the bot's reply is written but not sent yet."""
    waiting = and_(Message.direction == Direction.INBOUND, Message.processed_at.is_(None))
    unsent_reply = and_(
        Message.direction == Direction.OUTBOUND,
        Message.author == Author.BOT,
        Message.delivery_status == DeliveryStatus.PENDING,
    )
    stmt = select(
        exists().where(
            Message.conversation_id == Conversation.id,
            Conversation.customer_id == Customer.id,
            Conversation.status == ConversationStatus.ACTIVE,
            Customer.channel == Channel.CONSOLE,
            Customer.chat_id == chat_id,
            or_(waiting, unsent_reply),
        )
    )
    return bool((await session.execute(stmt)).scalar())
