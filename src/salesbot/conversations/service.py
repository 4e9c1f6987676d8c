"""Conversation services for managers and jobs: takeover, hand-back, closing, manager messages.

Each function works inside the caller's unit of work and only flushes. Whoever commits messages written here
calls `salesbot.outbox.service.schedule_delivery(redis, conversation_id)` after the commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.conversations import repository
from salesbot.kit.errors import AppError, NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.models import Author, Conversation, ConversationStatus, Message, Owner
from salesbot.models._columns import utcnow
from salesbot.outbox.service import write_outbound
from salesbot.outbox.splitting import part_limit
from salesbot.settings import Settings, get_settings

log = get_logger(__name__)

# The one limit of a manager's message, for the admin and the REST API alike (split to the channel's limit).
MAX_MANAGER_TEXT_LENGTH = 4096


async def _conversation(session: AsyncSession, conversation_id: int, *, lock: bool = True) -> Conversation:
    query = select(Conversation).where(Conversation.id == conversation_id)
    # FOR NO KEY UPDATE: a running turn may hold a key-share lock on the row (its quotes reference it); a
    # manager's action must not wait for that turn's model.
    conversation = await session.scalar(query.with_for_update(key_share=True) if lock else query)
    if conversation is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    return conversation


async def _own(session: AsyncSession, conversation: Conversation, until: datetime | None) -> None:
    conversation.owner = Owner.HUMAN
    conversation.owner_until = until
    cancelled = await repository.cancel_pending_bot_messages(session, conversation.id, reason="human_takeover")
    await session.flush()
    log.info("conversations.taken_over", conversation=conversation.id, cancelled=cancelled)


async def take_over(session: AsyncSession, conversation_id: int, *, hours: float) -> Conversation:
    """A manager owns the chat for `hours`: the bot stays silent and its unsent replies are withdrawn."""
    if hours <= 0:
        raise AppError("hours must be positive", status_code=422)
    conversation = await _conversation(session, conversation_id)
    await _own(session, conversation, utcnow() + timedelta(hours=hours))
    return conversation


async def hand_back(session: AsyncSession, conversation_id: int) -> Conversation:
    """The bot answers again from the customer's next message on."""
    conversation = await _conversation(session, conversation_id)
    conversation.owner = Owner.BOT
    conversation.owner_until = None
    await session.flush()
    log.info("conversations.handed_back", conversation=conversation_id)
    return conversation


async def close_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    """Close the conversation; the customer's next message opens a new one."""
    conversation = await _conversation(session, conversation_id)
    conversation.status = ConversationStatus.CLOSED
    await repository.cancel_pending_bot_messages(session, conversation_id, reason="conversation_closed")
    await session.flush()
    log.info("conversations.closed", conversation=conversation_id)
    return conversation


async def send_manager_message(
    session: AsyncSession, conversation_id: int, text: str, *, settings: Settings | None = None
) -> list[Message]:
    """Queue a manager's message (split to the channel's limit) and make the human the owner of the chat.

    Returns the pending outbound rows, in order; schedule delivery after the commit.
    """
    settings = settings or get_settings()
    text = text.strip()
    if not text:
        raise AppError("text must not be empty", status_code=422)
    if len(text) > MAX_MANAGER_TEXT_LENGTH:
        raise AppError(f"text is longer than {MAX_MANAGER_TEXT_LENGTH} characters", status_code=422)
    conversation = await _conversation(session, conversation_id)
    await _own(session, conversation, utcnow() + timedelta(hours=settings.conversation.human_takeover_hours))
    rows = await write_outbound(
        session,
        conversation,
        text=text,
        author=Author.MANAGER,
        key_prefix=f"manager:{conversation_id}:{uuid.uuid4().hex}",
        limit=part_limit(settings, conversation.channel),
    )
    conversation.message_count += len(rows)
    conversation.last_message_at = utcnow()
    await session.flush()
    return rows


async def apply_manager_echo(
    session: AsyncSession, conversation_id: int, message_id: int, *, hours: float
) -> Conversation | None:
    """A human wrote from the provider's own inbox: they own the chat for `hours` from when salesbot received it.

    The provider's timestamp is not trusted for this: a clock that runs ahead would lengthen the takeover and a
    delayed or redelivered echo (days old) would cancel it, so the takeover runs from when the inbox stored the
    echo (`created_at`). Idempotent (a repeated job changes nothing) and never shortens a longer takeover already
    in place. Marks the echo applied (`processed_at`), so that a turn can apply the takeovers whose job was lost
    (Redis data loss).
    """
    message = await session.get(Message, message_id)
    if message is None:
        return None
    conversation = await _conversation(session, conversation_id)
    if message.processed_at is None:
        message.processed_at = utcnow()
    until = message.created_at + timedelta(hours=hours)
    if until <= utcnow():
        return conversation
    if conversation.owner is Owner.HUMAN and (conversation.owner_until is None or conversation.owner_until >= until):
        await repository.cancel_pending_bot_messages(session, conversation.id, reason="human_takeover")
        return conversation
    await _own(session, conversation, until)
    return conversation
