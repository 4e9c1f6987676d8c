"""SQL of the follow-ups domain: which conversations a rule triggers for, and the rows the cron works on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from salesbot.models import (
    Conversation,
    ConversationStatus,
    Customer,
    Direction,
    FollowUp,
    FollowUpStatus,
    Message,
    Owner,
    Quote,
    SalesStage,
)


@dataclass(frozen=True)
class Trigger:
    conversation_id: int
    # "quote:{id}" or "stall:{last customer message id}": with the rule and conversation, the follow-up's key.
    trigger: str
    at: datetime


def follow_up_key(rule: str, conversation_id: int, trigger: str) -> str:
    return f"{rule}:{conversation_id}:{trigger}"


def _eligible(now: datetime) -> list[object]:
    """An active conversation the bot may write in: customer not opted out, no manager owning it."""
    return [
        Conversation.status == ConversationStatus.ACTIVE,
        Customer.opted_out_at.is_(None),
        or_(Conversation.owner == Owner.BOT, Conversation.owner_until <= now),
    ]


def _not_scheduled(rule: str, trigger: object) -> object:
    key = func.concat(literal(f"{rule}:"), cast(Conversation.id, String), literal(":"), trigger)
    return ~select(FollowUp.id).where(FollowUp.key == key).exists()


def _no_inbound_since(since: object) -> object:
    return (
        ~select(Message.id)
        .where(
            Message.conversation_id == Conversation.id,
            Message.direction == Direction.INBOUND,
            Message.created_at > since,
        )
        .exists()
    )


async def unanswered_quotes(
    session: AsyncSession, rule: str, *, stage: SalesStage | None, now: datetime, limit: int
) -> list[Trigger]:
    """Conversations whose latest quote has no customer message after it, not yet scheduled for `rule`."""
    newer = aliased(Quote)
    latest = select(func.max(newer.id)).where(newer.conversation_id == Conversation.id).scalar_subquery()
    trigger = func.concat(literal("quote:"), cast(Quote.id, String))
    query = (
        select(Conversation.id, Quote.id, Quote.created_at)
        .join(Quote, Quote.conversation_id == Conversation.id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(
            *_eligible(now),  # type: ignore[arg-type]
            Quote.id == latest,
            _no_inbound_since(Quote.created_at),  # type: ignore[arg-type]
            _not_scheduled(rule, trigger),  # type: ignore[arg-type]
        )
        .order_by(Conversation.id)
        .limit(limit)
    )
    if stage is not None:
        query = query.where(Conversation.sales_stage == stage)
    rows = await session.execute(query)
    return [Trigger(conversation_id, f"quote:{quote_id}", created_at) for conversation_id, quote_id, created_at in rows]


async def stalled(session: AsyncSession, rule: str, *, stage: SalesStage, now: datetime, limit: int) -> list[Trigger]:
    """Conversations in `stage` whose customer's last message was answered (processed) and nothing came since;
    the stall starts at the conversation's last message. Not yet scheduled for `rule` for that last message."""
    last_inbound = (
        select(Message.id, Message.created_at, Message.processed_at)
        .where(Message.conversation_id == Conversation.id, Message.direction == Direction.INBOUND)
        .order_by(Message.id.desc())
        .limit(1)
        .lateral("last_inbound")
    )
    trigger = func.concat(literal("stall:"), cast(last_inbound.c.id, String))
    query = (
        select(
            Conversation.id,
            last_inbound.c.id,
            func.greatest(Conversation.last_message_at, last_inbound.c.created_at),
        )
        .join(Customer, Customer.id == Conversation.customer_id)
        .join(last_inbound, literal(True))
        .where(
            *_eligible(now),  # type: ignore[arg-type]
            Conversation.sales_stage == stage,
            last_inbound.c.processed_at.is_not(None),
            _not_scheduled(rule, trigger),  # type: ignore[arg-type]
        )
        .order_by(Conversation.id)
        .limit(limit)
    )
    rows = await session.execute(query)
    return [Trigger(conversation_id, f"stall:{message_id}", at) for conversation_id, message_id, at in rows]


async def schedule(session: AsyncSession, rule: str, trigger: Trigger, *, due_at: datetime) -> bool:
    """Insert the scheduled follow-up unless its key exists (a second cron run schedules nothing)."""
    result = await session.execute(
        insert(FollowUp)
        .values(
            conversation_id=trigger.conversation_id,
            rule=rule,
            key=follow_up_key(rule, trigger.conversation_id, trigger.trigger),
            status=FollowUpStatus.SCHEDULED,
            trigger_at=trigger.at,
            due_at=due_at,
        )
        .on_conflict_do_nothing(index_elements=[FollowUp.key])
        .returning(FollowUp.id)
    )
    return result.scalar_one_or_none() is not None


async def scheduled_ids(session: AsyncSession, *, due_before: datetime | None, limit: int) -> list[int]:
    query = select(FollowUp.id).where(FollowUp.status == FollowUpStatus.SCHEDULED)
    if due_before is not None:
        query = query.where(FollowUp.due_at <= due_before)
    rows = await session.scalars(query.order_by(FollowUp.due_at, FollowUp.id).limit(limit))
    return list(rows)


async def lock_scheduled(session: AsyncSession, follow_up_id: int) -> FollowUp | None:
    """The follow-up if still scheduled, locked (a concurrent run's row is skipped)."""
    return await session.scalar(
        select(FollowUp)
        .where(FollowUp.id == follow_up_id, FollowUp.status == FollowUpStatus.SCHEDULED)
        .with_for_update(skip_locked=True)
    )


async def conversation_of(
    session: AsyncSession, conversation_id: int, *, lock: bool
) -> tuple[Conversation, Customer] | None:
    query = (
        select(Conversation, Customer)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(Conversation.id == conversation_id)
    )
    row = (await session.execute(query.with_for_update() if lock else query)).one_or_none()
    return None if row is None else (row[0], row[1])


async def last_inbound(session: AsyncSession, conversation_id: int) -> Message | None:
    return await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == Direction.INBOUND)
        .order_by(Message.id.desc())
        .limit(1)
    )


async def sent_since(session: AsyncSession, conversation_id: int, since: datetime) -> int:
    return int(
        await session.scalar(
            select(func.count(FollowUp.id)).where(
                FollowUp.conversation_id == conversation_id,
                FollowUp.status == FollowUpStatus.SENT,
                FollowUp.sent_at > since,
            )
        )
        or 0
    )
