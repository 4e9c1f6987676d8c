"""SQL of the media domain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from salesbot.models import Direction, Message, MessageMedia


async def messages_to_prepare(session: AsyncSession, conversation_id: int) -> list[Message]:
    """The conversation's unprocessed customer messages that carry files not fetched yet, oldest first."""
    result = await session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.INBOUND,
            Message.processed_at.is_(None),
            Message.media != [],
            ~exists().where(MessageMedia.message_id == Message.id),
        )
        .order_by(Message.id)
    )
    return list(result)


async def media_of(session: AsyncSession, message_ids: Sequence[int]) -> list[MessageMedia]:
    """The kept files (without their bytes) of these messages."""
    if not message_ids:
        return []
    result = await session.scalars(
        select(MessageMedia)
        .where(MessageMedia.message_id.in_(message_ids))
        .order_by(MessageMedia.message_id, MessageMedia.position)
    )
    return list(result)


async def get_with_data(session: AsyncSession, media_id: int) -> MessageMedia | None:
    return await session.scalar(
        select(MessageMedia).where(MessageMedia.id == media_id).options(undefer(MessageMedia.data))
    )


async def prepared(session: AsyncSession, message_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(MessageMedia.message_id == message_id))))


async def recent_customer_texts(session: AsyncSession, conversation_id: int, *, limit: int = 10) -> list[str]:
    """The customer's latest texts, oldest first (what tells the language they write in)."""
    result = await session.scalars(
        select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.direction == Direction.INBOUND, Message.text != "")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return list(reversed(list(result)))
