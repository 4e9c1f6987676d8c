"""The dashboard numbers (admin dashboard and `GET /api/v1/stats`), computed in PostgreSQL over a window of days.

Definitions (days are UTC calendar days):
- funnel: conversations with activity in the window, by their current sales stage;
- reply latency: from the customer's latest stored message to the moment the reply's first part was sent;
- agent latency: the agent's generation time recorded on the turn (model calls and tools);
- handoffs: conversations in which a manager wrote, or the agent called `request_human`, on that day;
- failed deliveries: outbound messages whose delivery ended `failed`;
- LLM cost, requests and tokens: every generation of every turn (`llm_usage`), including drafts that were
  discarded, withdrawn or cut by the turn budget, so they match what the LLM provider bills.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Date, and_, cast, func, literal, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from salesbot.models import (
    Author,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    LlmUsage,
    Message,
    Owner,
    SalesStage,
)

HANDOFF_TOOL = "request_human"  # turn records store calls as {"tool", "args", "outcome"} (agent.service)


class StageCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: SalesStage
    conversations: int


class Percentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50_ms: int | None
    p95_ms: int | None
    samples: int


class DayStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: date
    new_conversations: int
    inbound_messages: int
    outbound_messages: int
    handoffs: int
    failed_deliveries: int
    llm_cost: Decimal
    reply_latency_p50_ms: int | None
    reply_latency_p95_ms: int | None


class Totals(BaseModel):
    model_config = ConfigDict(frozen=True)

    new_conversations: int
    inbound_messages: int
    outbound_messages: int
    handoffs: int
    failed_deliveries: int
    llm_cost: Decimal
    llm_requests: int
    llm_tokens_in: int
    llm_tokens_out: int


class CurrentState(BaseModel):
    model_config = ConfigDict(frozen=True)

    active_conversations: int
    owned_by_human: int
    needs_attention: int


class DashboardStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    since: datetime
    until: datetime
    days: int
    funnel: list[StageCount]
    totals: Totals
    reply_latency: Percentiles
    agent_latency: Percentiles
    current: CurrentState
    per_day: list[DayStats]


def window(days: int, *, now: datetime) -> tuple[datetime, datetime]:
    """`days` whole UTC days ending today: [midnight of the first day, now]."""
    first_day = now.astimezone(UTC).date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time.min, tzinfo=UTC), now


def _day(column: Any) -> ColumnElement[date]:
    return cast(func.timezone("UTC", column), Date)


def _in_window(column: Any, since: datetime, until: datetime) -> ColumnElement[bool]:
    return and_(column >= since, column <= until)


def _ms(value: Any) -> int | None:
    return None if value is None else round(float(value))


def _is_handoff() -> ColumnElement[bool]:
    return or_(
        Message.author == Author.MANAGER,
        Message.tool_calls.op("@>")(type_coerce([{"tool": HANDOFF_TOOL}], JSONB)),
    )


def _reply_latency_ms() -> ColumnElement[Any]:
    """Milliseconds from the customer's latest message before a bot reply to that reply being sent."""
    inbound = aliased(Message)
    last_inbound = (
        select(func.max(inbound.created_at))
        .where(
            inbound.conversation_id == Message.conversation_id,
            inbound.direction == Direction.INBOUND,
            inbound.created_at <= Message.created_at,
        )
        .correlate(Message)
        .scalar_subquery()
    )
    return func.extract("epoch", Message.sent_at - last_inbound) * 1000


def _first_bot_parts(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        Message.direction == Direction.OUTBOUND,
        Message.author == Author.BOT,
        Message.part_index == 0,
        _in_window(Message.created_at, since, until),
    ]


async def compute_stats(session: AsyncSession, *, days: int, now: datetime) -> DashboardStats:
    since, until = window(days, now=now)
    activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)

    funnel_rows = await session.execute(
        select(Conversation.sales_stage, func.count())
        .where(_in_window(activity, since, until))
        .group_by(Conversation.sales_stage)
    )
    funnel_counts: dict[SalesStage, int] = dict(funnel_rows.all())

    new_rows = await session.execute(
        select(_day(Conversation.created_at).label("day"), func.count())
        .where(_in_window(Conversation.created_at, since, until))
        .group_by("day")
    )
    new_by_day: dict[date, int] = dict(new_rows.all())

    not_cancelled = Message.delivery_status.is_distinct_from(DeliveryStatus.CANCELLED)
    message_rows = await session.execute(
        select(
            _day(Message.created_at).label("day"),
            func.count().filter(Message.direction == Direction.INBOUND),
            func.count().filter(and_(Message.direction == Direction.OUTBOUND, not_cancelled)),
            func.count().filter(
                and_(Message.direction == Direction.OUTBOUND, Message.delivery_status == DeliveryStatus.FAILED)
            ),
            func.count(func.distinct(Message.conversation_id)).filter(_is_handoff()),
        )
        .where(_in_window(Message.created_at, since, until))
        .group_by("day")
    )
    messages_by_day = {row[0]: row[1:] for row in message_rows}

    usage_rows = await session.execute(
        select(
            _day(LlmUsage.created_at).label("day"),
            func.coalesce(func.sum(LlmUsage.cost), literal(Decimal(0))),
            func.coalesce(func.sum(LlmUsage.requests), 0),
            func.coalesce(func.sum(LlmUsage.tokens_in), 0),
            func.coalesce(func.sum(LlmUsage.tokens_out), 0),
        )
        .where(_in_window(LlmUsage.created_at, since, until))
        .group_by("day")
    )
    usage_by_day: dict[date, tuple[Decimal, int, int, int]] = {
        row[0]: (Decimal(row[1] or 0), int(row[2]), int(row[3]), int(row[4])) for row in usage_rows
    }

    latency = _reply_latency_ms().label("latency_ms")
    replies = (
        select(_day(Message.created_at).label("day"), latency)
        .where(*_first_bot_parts(since, until), Message.sent_at.is_not(None))
        .subquery()
    )
    p50 = func.percentile_cont(0.5).within_group(replies.c.latency_ms)
    p95 = func.percentile_cont(0.95).within_group(replies.c.latency_ms)
    latency_filter = replies.c.latency_ms.is_not(None)
    latency_rows = await session.execute(select(replies.c.day, p50, p95).where(latency_filter).group_by(replies.c.day))
    latency_by_day = {day: (_ms(a), _ms(b)) for day, a, b in latency_rows}
    overall = (await session.execute(select(p50, p95, func.count()).where(latency_filter))).one()
    reply_latency = Percentiles(p50_ms=_ms(overall[0]), p95_ms=_ms(overall[1]), samples=int(overall[2]))

    agent = (
        await session.execute(
            select(
                func.percentile_cont(0.5).within_group(Message.latency_ms),
                func.percentile_cont(0.95).within_group(Message.latency_ms),
                func.count(Message.latency_ms),
            ).where(*_first_bot_parts(since, until), Message.latency_ms.is_not(None))
        )
    ).one()
    agent_latency = Percentiles(p50_ms=_ms(agent[0]), p95_ms=_ms(agent[1]), samples=int(agent[2]))

    handoffs_total = int(
        (
            await session.execute(
                select(func.count(func.distinct(Message.conversation_id))).where(
                    _in_window(Message.created_at, since, until), _is_handoff()
                )
            )
        ).scalar_one()
    )

    is_active = Conversation.status == ConversationStatus.ACTIVE
    current = (
        await session.execute(
            select(
                func.count().filter(is_active),
                func.count().filter(and_(is_active, Conversation.owner == Owner.HUMAN)),
                func.count().filter(and_(is_active, Conversation.needs_attention.is_(True))),
            )
        )
    ).one()

    per_day: list[DayStats] = []
    for offset in range(days):
        day = since.date() + timedelta(days=offset)
        inbound, outbound, failed, handoffs = messages_by_day.get(day, (0, 0, 0, 0))
        cost = usage_by_day.get(day, (Decimal(0), 0, 0, 0))[0]
        lat50, lat95 = latency_by_day.get(day, (None, None))
        per_day.append(
            DayStats(
                day=day,
                new_conversations=new_by_day.get(day, 0),
                inbound_messages=inbound,
                outbound_messages=outbound,
                handoffs=handoffs,
                failed_deliveries=failed,
                llm_cost=Decimal(cost or 0),
                reply_latency_p50_ms=lat50,
                reply_latency_p95_ms=lat95,
            )
        )

    return DashboardStats(
        since=since,
        until=until,
        days=days,
        funnel=[StageCount(stage=stage, conversations=funnel_counts.get(stage, 0)) for stage in SalesStage],
        totals=Totals(
            new_conversations=sum(d.new_conversations for d in per_day),
            inbound_messages=sum(d.inbound_messages for d in per_day),
            outbound_messages=sum(d.outbound_messages for d in per_day),
            handoffs=handoffs_total,
            failed_deliveries=sum(d.failed_deliveries for d in per_day),
            llm_cost=sum((d.llm_cost for d in per_day), Decimal(0)),
            llm_requests=sum(u[1] for u in usage_by_day.values()),
            llm_tokens_in=sum(u[2] for u in usage_by_day.values()),
            llm_tokens_out=sum(u[3] for u in usage_by_day.values()),
        ),
        reply_latency=reply_latency,
        agent_latency=agent_latency,
        current=CurrentState(
            active_conversations=int(current[0]), owned_by_human=int(current[1]), needs_attention=int(current[2])
        ),
        per_day=per_day,
    )
