"""Dashboard numbers computed from seeded conversations with known timings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Author, DeliveryStatus, LlmUsage, Owner, SalesStage
from salesbot.reporting.stats import compute_stats, window
from tests.reporting.factories import add_message, make_chat

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_window_is_whole_utc_days_ending_now() -> None:
    since, until = window(3, now=NOW)
    assert since == datetime(2026, 11, 18, tzinfo=UTC)
    assert until == NOW


async def test_stats_count_what_happened_in_the_window(db_session: AsyncSession) -> None:
    today = NOW - timedelta(hours=2)
    yesterday = NOW - timedelta(days=1, hours=2)

    fast = await make_chat(db_session, stage=SalesStage.QUOTING, created_at=yesterday, last_message_at=today)
    await add_message(db_session, fast, "hi", at=today)
    await add_message(
        db_session,
        fast,
        "hello!",
        author=Author.BOT,
        at=today + timedelta(seconds=2),
        sent_at=today + timedelta(seconds=3),
        latency_ms=800,
        cost=Decimal("0.010000"),
        model="m",
    )
    # The second part of a split reply is not another reply.
    await add_message(
        db_session,
        fast,
        "part two",
        author=Author.BOT,
        at=today + timedelta(seconds=2),
        part_index=1,
        sent_at=today + timedelta(seconds=30),
    )

    slow = await make_chat(db_session, stage=SalesStage.QUOTING, created_at=today, last_message_at=today)
    await add_message(db_session, slow, "price?", at=today)
    await add_message(
        db_session,
        slow,
        "a manager will call",
        author=Author.BOT,
        at=today + timedelta(seconds=5),
        sent_at=today + timedelta(seconds=11),
        latency_ms=1200,
        cost=Decimal("0.020000"),
        tool_calls=[
            {"tool": "search_products", "args": {}, "outcome": "ok"},
            {"tool": "request_human", "args": {"reason": "x"}, "outcome": "ok"},
        ],
    )
    await add_message(db_session, slow, "lost", author=Author.BOT, at=today, status=DeliveryStatus.FAILED, sent_at=None)
    await add_message(
        db_session, slow, "withdrawn", author=Author.BOT, at=today, status=DeliveryStatus.CANCELLED, sent_at=None
    )

    human = await make_chat(db_session, owner=Owner.HUMAN, created_at=yesterday, last_message_at=yesterday)
    await add_message(db_session, human, "hello, I am Anna", author=Author.MANAGER, at=yesterday)

    # Outside a 2-day window.
    ancient = await make_chat(db_session, created_at=NOW - timedelta(days=40), last_message_at=NOW - timedelta(days=40))
    await add_message(db_session, ancient, "old", at=NOW - timedelta(days=40))

    # What the LLM was asked: the two sent replies, a draft discarded for newer messages, and an old turn.
    for conversation, outcome, cost, at in [
        (fast, "sent", "0.010000", today),
        (slow, "sent", "0.020000", today),
        (slow, "discarded", "0.005000", today),
        (ancient, "sent", "0.500000", NOW - timedelta(days=40)),
    ]:
        db_session.add(
            LlmUsage(
                conversation_id=conversation.conversation.id,
                outcome=outcome,
                model="m",
                requests=2,
                tokens_in=300,
                tokens_out=40,
                cost=Decimal(cost),
                created_at=at,
            )
        )
    await db_session.flush()

    stats = await compute_stats(db_session, days=2, now=NOW)

    assert stats.days == 2
    assert [d.day for d in stats.per_day] == [yesterday.date(), today.date()]
    funnel = {entry.stage: entry.conversations for entry in stats.funnel}
    assert list(funnel) == list(SalesStage)
    assert funnel[SalesStage.QUOTING] == 2
    assert funnel[SalesStage.GREETING] == 1  # `human`; `ancient` is outside the window
    assert sum(funnel.values()) == 3

    assert stats.totals.new_conversations == 3
    assert stats.totals.inbound_messages == 2
    assert stats.totals.outbound_messages == 5  # 3 bot parts + the failed one + the manager's; not the cancelled
    assert stats.totals.failed_deliveries == 1
    assert stats.totals.handoffs == 2  # `slow` (request_human) and `human` (a manager wrote)
    # The discarded draft was paid for too.
    assert stats.totals.llm_cost == Decimal("0.035000")
    assert (stats.totals.llm_requests, stats.totals.llm_tokens_in, stats.totals.llm_tokens_out) == (6, 900, 120)

    # Replies after 3 s and 11 s: percentile_cont interpolates.
    assert (stats.reply_latency.p50_ms, stats.reply_latency.p95_ms, stats.reply_latency.samples) == (7000, 10600, 2)
    assert (stats.agent_latency.p50_ms, stats.agent_latency.p95_ms, stats.agent_latency.samples) == (1000, 1180, 2)

    day_before, day = stats.per_day
    assert (day_before.new_conversations, day_before.handoffs, day_before.outbound_messages) == (2, 1, 1)
    assert day_before.reply_latency_p50_ms is None
    assert (day.new_conversations, day.inbound_messages, day.failed_deliveries, day.handoffs) == (1, 2, 1, 1)
    assert day.reply_latency_p95_ms == 10600
    assert day.llm_cost == Decimal("0.035000")

    assert (stats.current.active_conversations, stats.current.owned_by_human) == (4, 1)


async def test_stats_of_an_empty_database(db_session: AsyncSession) -> None:
    stats = await compute_stats(db_session, days=7, now=NOW)
    assert len(stats.per_day) == 7
    assert stats.totals.inbound_messages == 0
    assert stats.reply_latency.p50_ms is None
    assert stats.reply_latency.samples == 0
    assert all(entry.conversations == 0 for entry in stats.funnel)
