"""SQL of the inbox: idempotent inserts of provider messages (the database half of every claim)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.messaging.base import EchoMessage, InboundMessage
from salesbot.models import Author, Channel, Customer, DeliveryStatus, Direction, Message


async def insert_inbound(session: AsyncSession, conversation_id: int, event: InboundMessage) -> int | None:
    """Store a customer message; None when the provider id is already stored (a redelivery)."""
    return await session.scalar(
        insert(Message)
        .values(
            conversation_id=conversation_id,
            channel=event.channel,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text=event.text,
            content_type=event.content_type,
            media=[asdict(item) for item in event.media],
            provider_message_id=event.provider_message_id,
            sent_at=event.sent_at,
        )
        .on_conflict_do_nothing(index_elements=[Message.channel, Message.provider_message_id])
        .returning(Message.id)
    )


async def insert_manager_echo(
    session: AsyncSession, conversation_id: int, event: EchoMessage, *, now: datetime
) -> int | None:
    """Store a message a human sent outside salesbot (already delivered by the provider)."""
    return await session.scalar(
        insert(Message)
        .values(
            conversation_id=conversation_id,
            channel=event.channel,
            direction=Direction.OUTBOUND,
            author=Author.MANAGER,
            text=event.text,
            content_type=event.content_type,
            media=[asdict(item) for item in event.media],
            provider_message_id=event.provider_message_id,
            delivery_status=DeliveryStatus.SENT,
            sent_at=event.sent_at or now,
        )
        .on_conflict_do_nothing(index_elements=[Message.channel, Message.provider_message_id])
        .returning(Message.id)
    )


async def message_id_by_provider_id(session: AsyncSession, channel: Channel, provider_message_id: str) -> int | None:
    return await session.scalar(
        select(Message.id).where(Message.channel == channel, Message.provider_message_id == provider_message_id)
    )


async def opt_out(session: AsyncSession, customer_id: int, *, at: datetime) -> bool:
    """Record an opt-out at `at` unless the customer is opted out already; True when this call did it."""
    result = await session.execute(
        update(Customer).where(Customer.id == customer_id, Customer.opted_out_at.is_(None)).values(opted_out_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def created_at(session: AsyncSession, message_id: int) -> datetime:
    return (await session.execute(select(Message.created_at).where(Message.id == message_id))).scalar_one()
