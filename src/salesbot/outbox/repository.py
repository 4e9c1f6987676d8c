"""SQL of the outbox: pending rows in order, delivery statuses, and what the gate needs to know."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Author, Channel, Conversation, Customer, DeliveryStatus, Direction, Message

# Delivery only moves forward. `cancelled` ranks with `pending`: a withdrawn row the provider reports as sent
# (a takeover that raced the HTTP call) shows what really happened.
_RANK = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.CANCELLED: 0,
    DeliveryStatus.UNCONFIRMED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
}


def status_advances(current: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether a reported status may replace the current one (never backwards; `failed` only before delivery)."""
    if current is None:
        return True
    if current is DeliveryStatus.FAILED:
        return False
    if new is DeliveryStatus.FAILED:
        return current in (
            DeliveryStatus.PENDING,
            DeliveryStatus.CANCELLED,
            DeliveryStatus.UNCONFIRMED,
            DeliveryStatus.SENT,
        )
    return _RANK.get(new, 0) > _RANK.get(current, 0)


def _pending(conversation_id: int) -> tuple[ColumnElement[bool], ...]:
    return (
        Message.conversation_id == conversation_id,
        Message.direction == Direction.OUTBOUND,
        Message.delivery_status == DeliveryStatus.PENDING,
    )


async def next_pending(session: AsyncSession, conversation_id: int) -> Message | None:
    """The conversation's oldest pending outbound row, locked (skipped if another deliverer holds it)."""
    return await session.scalar(
        select(Message)
        .where(*_pending(conversation_id))
        .order_by(Message.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


async def has_pending(session: AsyncSession, conversation_id: int) -> bool:
    """Whether the conversation has a pending outbound row (locked by another deliverer or not)."""
    return bool(await session.scalar(select(exists().where(*_pending(conversation_id)))))


async def lock_by_provider_id(session: AsyncSession, channel: Channel, provider_message_id: str) -> Message | None:
    return await session.scalar(
        select(Message)
        .where(
            Message.channel == channel,
            Message.provider_message_id == provider_message_id,
            Message.direction == Direction.OUTBOUND,
        )
        .with_for_update()
    )


async def lock_unreconciled_by_key(session: AsyncSession, channel: Channel, idempotency_key: str) -> Message | None:
    """The outbound row with this idempotency key that has no provider id yet (its send answer never arrived)."""
    return await session.scalar(
        select(Message)
        .where(
            Message.channel == channel,
            Message.idempotency_key == idempotency_key,
            Message.direction == Direction.OUTBOUND,
            Message.provider_message_id.is_(None),
        )
        .with_for_update()
    )


async def last_inbound_at(session: AsyncSession, customer_id: int) -> datetime | None:
    """When the customer last wrote (any conversation): the start of the 24-hour window."""
    return await session.scalar(
        select(func.max(Message.created_at))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.customer_id == customer_id, Message.direction == Direction.INBOUND)
    )


async def customer_wrote_after(session: AsyncSession, conversation_id: int, message_id: int) -> bool:
    """Whether the customer wrote in the conversation after the outbound row `message_id` was written."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.INBOUND,
                    Message.id > message_id,
                )
            )
        )
    )


async def manager_wrote_after(session: AsyncSession, conversation_id: int, message_id: int) -> bool:
    """Whether a manager's message came after the customer message a bot reply answers (the reply is stale)."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Message.conversation_id == conversation_id,
                    Message.author == Author.MANAGER,
                    Message.id > message_id,
                )
            )
        )
    )


async def provider_ids(session: AsyncSession, conversation_id: int) -> set[str]:
    rows = await session.scalars(
        select(Message.provider_message_id).where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUTBOUND,
            Message.provider_message_id.is_not(None),
        )
    )
    return {row for row in rows if row}


def _other_parts_of_reply(message: Message) -> tuple[ColumnElement[bool], ...]:
    """The outbound rows of the same reply as `message`: its conversation and idempotency-key prefix."""
    assert message.idempotency_key is not None
    prefix = message.idempotency_key.rsplit(":", 1)[0] + ":"
    return (
        Message.conversation_id == message.conversation_id,
        Message.direction == Direction.OUTBOUND,
        Message.idempotency_key.startswith(prefix, autoescape=True),
    )


async def withdraw_group(session: AsyncSession, message: Message, *, status: DeliveryStatus, reason: str) -> int:
    """The remaining pending parts of the same reply as `message` (same idempotency-key prefix) get `status`."""
    if not message.idempotency_key:
        return 0
    result = await session.execute(
        update(Message)
        .where(
            *_other_parts_of_reply(message),
            Message.delivery_status == DeliveryStatus.PENDING,
            Message.id != message.id,
        )
        .values(delivery_status=status, error=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def restore_group(session: AsyncSession, message: Message, *, reason: str) -> int:
    """Parts of `message`'s reply withdrawn with `reason` become pending again (the gate still checks each)."""
    if not message.idempotency_key:
        return 0
    result = await session.execute(
        update(Message)
        .where(
            *_other_parts_of_reply(message),
            Message.delivery_status == DeliveryStatus.CANCELLED,
            Message.error == reason,
        )
        .values(delivery_status=DeliveryStatus.PENDING, error=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def withdraw_automated(
    session: AsyncSession, customer_id: int, *, reason: str, keep_key_prefix: str
) -> list[int]:
    """Cancel every pending bot and system message to the customer, in any of their conversations, except those
    keyed `keep_key_prefix...` (consent confirmations); returns the conversations touched.

    A row whose send is in flight is cancelled too: if the provider took it, the deliverer records `sent`."""
    result = await session.execute(
        update(Message)
        .where(
            Message.conversation_id.in_(select(Conversation.id).where(Conversation.customer_id == customer_id)),
            Message.direction == Direction.OUTBOUND,
            Message.delivery_status == DeliveryStatus.PENDING,
            Message.author.in_((Author.BOT, Author.SYSTEM)),
            ~func.coalesce(Message.idempotency_key, "").startswith(keep_key_prefix, autoescape=True),
        )
        .values(delivery_status=DeliveryStatus.CANCELLED, error=reason)
        .returning(Message.conversation_id)
    )
    return sorted(set(result.scalars()))


async def own_send_for_echo(
    session: AsyncSession,
    channel: Channel,
    chat_id: str,
    *,
    text: str,
    is_template: bool,
    idempotency_key: str | None,
    attempted_since: datetime,
) -> Message | None:
    """The outbound row an echo reports, locked: a row salesbot tried to send (an attempt is on record, committed
    before the call) that has no provider id yet, carrying what the echo shows went out (the template for a
    template echo, else the same text), attempted since `attempted_since` (an echo follows its send within
    seconds). A row that already has its provider id is not matched: an echo with another id and the same text is
    a person re-sending it.
    """
    query = (
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(
            Customer.channel == channel,
            Customer.chat_id == chat_id,
            Message.direction == Direction.OUTBOUND,
            Message.provider_message_id.is_(None),
            Message.send_attempts > 0,
            Message.last_attempt_at >= attempted_since,
        )
        .order_by(Message.id)
        .limit(1)
        .with_for_update(of=Message)
    )
    if idempotency_key is not None:
        query = query.where(Message.idempotency_key.in_((idempotency_key, idempotency_key.removesuffix(":template"))))
    elif is_template:
        query = query.where(Message.content_type == "template")
    else:
        query = query.where(Message.content_type != "template", Message.text == text)
    return await session.scalar(query)


async def group_sent_template(session: AsyncSession, message: Message) -> bool:
    """Whether another part of the same reply already went out as the closed-window template."""
    if not message.idempotency_key:
        return False
    prefix = message.idempotency_key.rsplit(":", 1)[0] + ":"
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Message.conversation_id == message.conversation_id,
                    Message.content_type == "template",
                    Message.idempotency_key.startswith(prefix, autoescape=True),
                )
            )
        )
    )


async def conversations_with_stalled_outbox(
    session: AsyncSession, *, created_before: datetime, attempted_before: datetime, due_before: datetime, limit: int
) -> list[int]:
    """Conversations with pending rows no delivery job seems to be working on (lost job, Redis loss)."""
    rows = await session.scalars(
        select(Message.conversation_id)
        .where(
            Message.direction == Direction.OUTBOUND,
            Message.delivery_status == DeliveryStatus.PENDING,
            Message.created_at < created_before,
            (Message.last_attempt_at.is_(None)) | (Message.last_attempt_at < attempted_before),
            (Message.next_attempt_at.is_(None)) | (Message.next_attempt_at < due_before),
        )
        .order_by(Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return sorted(set(rows))
