"""SQL of the inbox: idempotent inserts of provider messages (the database half of every claim)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.messaging.base import EchoMessage, InboundMessage
from salesbot.models import Author, Channel, Customer, DeliveryStatus, Direction, Message


def _inbound_values(conversation_id: int, event: InboundMessage) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "channel": event.channel,
        "direction": Direction.INBOUND,
        "author": Author.CUSTOMER,
        "text": event.text,
        "content_type": event.content_type,
        "media": [asdict(item) for item in event.media],
        "provider_message_id": event.provider_message_id,
        "sent_at": event.sent_at,
    }


async def insert_inbound_many(
    session: AsyncSession, rows: Sequence[tuple[int, InboundMessage]]
) -> dict[tuple[Channel, str], int]:
    """Store customer messages `(conversation id, event)` in one statement, in the given order (ids follow it).

    Returns the new ids by `(channel, provider message id)`; ids already stored (redeliveries) are absent. The
    provider ids must be distinct within `rows` (the caller drops repeats, so the first copy is the one stored).
    """
    if not rows:
        return {}
    # Executemany, not a multi-row VALUES: the statement compiles once (cached) and SQLAlchemy expands the rows
    # into one INSERT ... VALUES (...), (...) RETURNING, in the given order.
    connection = await session.connection()
    stored = await connection.execute(
        insert(Message)
        .on_conflict_do_nothing(index_elements=[Message.channel, Message.provider_message_id])
        .returning(Message.channel, Message.provider_message_id, Message.id),
        [_inbound_values(conversation_id, event) for conversation_id, event in rows],
    )
    return {(channel, str(provider_id)): message_id for channel, provider_id, message_id in stored}


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
