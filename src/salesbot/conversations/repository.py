"""SQL for conversations (services call these and only flush; the job or request commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Conversation, Owner


async def release_expired_takeovers(session: AsyncSession, *, now: datetime) -> int:
    """Hand chats back to the bot whose human takeover has run out; returns how many."""
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.owner == Owner.HUMAN, Conversation.owner_until.is_not(None), Conversation.owner_until <= now
        )
        .values(owner=Owner.BOT, owner_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
