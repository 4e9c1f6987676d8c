"""Follow-ups against the real database and outbox; every time is relative to the test's own `now` (injected)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select

from salesbot.agent.playbook import FollowUpPolicy, FollowUpRule, LocalizedText, Playbook, PlaybookError, load_playbook
from salesbot.db import unit_of_work
from salesbot.devstack import EmbeddedRedis
from salesbot.followups.service import FollowUpRun, run_follow_ups
from salesbot.messaging.registry import build_providers
from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    FollowUp,
    FollowUpStatus,
    Message,
    Owner,
    Quote,
    SalesStage,
)
from salesbot.models._columns import utcnow
from salesbot.resources import Resources, open_resources
from salesbot.settings import MetaSettings
from tests.conftest import make_settings

REMINDER = LocalizedText(en="Did you look at the quote?", ru="Вы посмотрели предложение?", ar="هل اطلعت على العرض؟")
NUDGE = LocalizedText(en="Does one of the options suit you?", ru="Подходит ли вам один из вариантов?")


def playbook_with(*rules: FollowUpRule, max_per_day: int = 2) -> Playbook:
    return load_playbook().model_copy(update={"follow_ups": FollowUpPolicy(max_per_day=max_per_day, rules=list(rules))})


QUOTE_RULE = FollowUpRule(
    name="quote_reminder", trigger="quote_unanswered", after_hours=4, text=REMINDER, outside_window="template"
)
STALL_RULE = FollowUpRule(
    name="solution_nudge", trigger="stalled", stage=SalesStage.SOLUTION, after_hours=20, text=NUDGE
)


@pytest.fixture
async def meta_resources(
    database_url: str, redis_server: EmbeddedRedis, redis: ArqRedis, clean_db: None
) -> AsyncIterator[Resources]:
    """Resources whose Meta channel has an approved closed-window template."""
    settings = make_settings(
        database_url,
        redis_server.url,
        meta=MetaSettings(
            access_token="EAAJmeta-test-access-token-0123456789",
            phone_number_id="106540352242922",
            app_secret="meta-test-app-secret-0123456789abcdef",
            window_template="follow_up_reminder:en",
        ),
    )
    async with open_resources(settings, redis=redis) as opened:
        yield opened


@dataclass
class Chat:
    conversation_id: int
    customer_id: int
    inbound_id: int


async def chat(
    resources: Resources,
    *,
    wrote_at: datetime,
    channel: Channel = Channel.CONSOLE,
    language: str | None = "ru",
    stage: SalesStage = SalesStage.QUOTING,
    quote_at: datetime | None = None,
) -> Chat:
    """A customer who wrote at `wrote_at` and got an answer; optionally a quote created at `quote_at`."""
    async with unit_of_work(resources.sessionmaker) as session:
        customer = Customer(channel=channel, chat_id="+971501234567", last_inbound_at=wrote_at)
        session.add(customer)
        await session.flush()
        conversation = Conversation(
            customer_id=customer.id, channel=channel, language=language, sales_stage=stage, last_message_at=wrote_at
        )
        session.add(conversation)
        await session.flush()
        inbound = Message(
            conversation_id=conversation.id,
            channel=channel,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text="I need 12 laptops",
            created_at=wrote_at,
            processed_at=wrote_at,
        )
        session.add(inbound)
        if quote_at is not None:
            session.add(
                Quote(
                    conversation_id=conversation.id,
                    items=[],
                    subtotal=Decimal(100),
                    total=Decimal(100),
                    currency="AED",
                    created_at=quote_at,
                )
            )
        await session.flush()
        return Chat(conversation.id, customer.id, inbound.id)


async def run(resources: Resources, playbook: Playbook, now: datetime) -> FollowUpRun:
    return await run_follow_ups(resources, playbook, build_providers(resources), now=now)


async def follow_ups(resources: Resources) -> list[FollowUp]:
    async with resources.sessionmaker() as session:
        return list(await session.scalars(select(FollowUp).order_by(FollowUp.id)))


async def outbound(resources: Resources) -> list[Message]:
    async with resources.sessionmaker() as session:
        return list(
            await session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND).order_by(Message.id))
        )


async def test_an_unanswered_quote_gets_one_reminder_after_four_hours(resources: Resources) -> None:
    now = utcnow()
    quoted = now - timedelta(hours=1)
    c = await chat(resources, wrote_at=quoted - timedelta(minutes=2), quote_at=quoted)
    playbook = playbook_with(QUOTE_RULE)

    early = await run(resources, playbook, now)
    assert (early.scheduled, early.sent) == (1, 0)
    [scheduled] = await follow_ups(resources)
    assert scheduled.status is FollowUpStatus.SCHEDULED
    assert scheduled.due_at == quoted + timedelta(hours=4)
    assert scheduled.key.startswith(f"quote_reminder:{c.conversation_id}:quote:")

    due = quoted + timedelta(hours=4, seconds=1)
    sent = await run(resources, playbook, due)
    assert (sent.sent, sent.deliver) == (1, [c.conversation_id])
    [message] = await outbound(resources)
    # In the conversation's language, as the bot, written to the outbox (pending delivery).
    assert (message.text, message.author, message.delivery_status) == (REMINDER.ru, Author.BOT, DeliveryStatus.PENDING)
    assert message.idempotency_key == f"followup:{scheduled.key}:0"
    assert message.in_reply_to_id == c.inbound_id
    [row] = await follow_ups(resources)
    assert (row.status, row.message_id, row.sent_at) == (FollowUpStatus.SENT, message.id, due)

    # The cron runs again (or twice at once): nothing more.
    again = await run(resources, playbook, due + timedelta(hours=30))
    assert (again.scheduled, again.sent) == (0, 0)
    assert len(await outbound(resources)) == 1


async def test_two_runs_at_once_send_once(resources: Resources) -> None:
    import asyncio

    now = utcnow()
    await chat(resources, wrote_at=now - timedelta(hours=6), quote_at=now - timedelta(hours=5))
    playbook = playbook_with(QUOTE_RULE)
    runs = await asyncio.gather(*(run(resources, playbook, now) for _ in range(3)))
    assert sum(r.sent for r in runs) == 1
    assert len(await outbound(resources)) == 1
    assert len(await follow_ups(resources)) == 1


async def cancel_by(resources: Resources, c: Chat, how: str, now: datetime) -> None:
    async with unit_of_work(resources.sessionmaker) as session:
        conversation = await session.get_one(Conversation, c.conversation_id)
        customer = await session.get_one(Customer, c.customer_id)
        if how == "customer_replied":
            session.add(
                Message(
                    conversation_id=c.conversation_id,
                    channel=Channel.CONSOLE,
                    direction=Direction.INBOUND,
                    author=Author.CUSTOMER,
                    text="thinking about it",
                    created_at=now,
                )
            )
        elif how == "human_owner":
            conversation.owner, conversation.owner_until = Owner.HUMAN, now + timedelta(hours=12)
        elif how == "opted_out":
            customer.opted_out_at = now
        elif how == "conversation_closed":
            conversation.status = ConversationStatus.CLOSED


@pytest.mark.parametrize("how", ["customer_replied", "human_owner", "opted_out", "conversation_closed"])
async def test_a_scheduled_follow_up_is_cancelled(resources: Resources, how: str) -> None:
    now = utcnow()
    quoted = now - timedelta(hours=2)
    c = await chat(resources, wrote_at=quoted - timedelta(minutes=1), quote_at=quoted)
    playbook = playbook_with(QUOTE_RULE)
    await run(resources, playbook, now)
    await cancel_by(resources, c, how, now + timedelta(minutes=5))

    result = await run(resources, playbook, quoted + timedelta(hours=5))
    assert (result.cancelled, result.sent) == (1, 0)
    [row] = await follow_ups(resources)
    assert (row.status, row.reason) == (FollowUpStatus.CANCELLED, how)
    assert await outbound(resources) == []


async def test_outside_the_window_only_the_template_goes_out(meta_resources: Resources) -> None:
    now = utcnow()
    await chat(
        meta_resources, wrote_at=now - timedelta(hours=30), quote_at=now - timedelta(hours=29), channel=Channel.META
    )
    result = await run(meta_resources, playbook_with(QUOTE_RULE), now)
    assert result.sent == 1
    [message] = await outbound(meta_resources)
    assert message.content_type == "template"
    [row] = await follow_ups(meta_resources)
    assert (row.status, row.reason) == (FollowUpStatus.SENT, "template")


async def test_outside_the_window_without_a_template_nothing_goes_out_and_the_reason_is_kept(
    resources: Resources,
) -> None:
    now = utcnow()
    await chat(resources, wrote_at=now - timedelta(hours=30), quote_at=now - timedelta(hours=29))
    result = await run(resources, playbook_with(QUOTE_RULE), now)
    assert (result.sent, result.skipped) == (0, 1)
    [row] = await follow_ups(resources)
    assert (row.status, row.reason) == (FollowUpStatus.SKIPPED, "window_closed: no template configured for console")
    assert await outbound(resources) == []


async def test_a_rule_that_sends_no_template_skips_outside_the_window(meta_resources: Resources) -> None:
    now = utcnow()
    await chat(
        meta_resources, wrote_at=now - timedelta(hours=30), quote_at=now - timedelta(hours=29), channel=Channel.META
    )
    rule = QUOTE_RULE.model_copy(update={"outside_window": "skip"})
    await run(meta_resources, playbook_with(rule), now)
    [row] = await follow_ups(meta_resources)
    assert row.status is FollowUpStatus.SKIPPED
    assert row.reason == "window_closed: the rule sends nothing outside the 24-hour window"
    assert await outbound(meta_resources) == []


async def test_a_stalled_solution_gets_one_nudge_in_the_conversations_language(resources: Resources) -> None:
    now = utcnow()
    c = await chat(resources, wrote_at=now - timedelta(hours=21), stage=SalesStage.SOLUTION, language="en")
    playbook = playbook_with(STALL_RULE)
    result = await run(resources, playbook, now)
    assert (result.scheduled, result.sent) == (1, 1)
    [message] = await outbound(resources)
    assert message.text == NUDGE.en
    [row] = await follow_ups(resources)
    assert row.key == f"solution_nudge:{c.conversation_id}:stall:{c.inbound_id}"
    # Still stalled a day later: the same stall, no second nudge.
    assert (await run(resources, playbook, now + timedelta(hours=24))).sent == 0


async def test_a_conversation_in_another_stage_is_not_nudged(resources: Resources) -> None:
    now = utcnow()
    await chat(resources, wrote_at=now - timedelta(hours=21), stage=SalesStage.NEEDS_ANALYSIS)
    assert (await run(resources, playbook_with(STALL_RULE), now)).scheduled == 0


async def test_at_most_max_per_day_follow_ups_per_conversation(resources: Resources) -> None:
    now = utcnow()
    await chat(
        resources,
        wrote_at=now - timedelta(hours=21),
        stage=SalesStage.SOLUTION,
        quote_at=now - timedelta(hours=20, minutes=59),
    )
    result = await run(resources, playbook_with(QUOTE_RULE, STALL_RULE, max_per_day=1), now)
    assert (result.sent, result.skipped) == (1, 1)
    rows = await follow_ups(resources)
    assert sorted(row.status.value for row in rows) == ["sent", "skipped"]
    [skipped] = [row for row in rows if row.status is FollowUpStatus.SKIPPED]
    assert skipped.reason is not None
    assert skipped.reason.startswith("daily_limit")
    assert len(await outbound(resources)) == 1


def test_a_stalled_rule_needs_a_stage() -> None:
    data: dict[str, Any] = load_playbook().model_dump(mode="json")
    data["follow_ups"] = {"rules": [{"name": "nudge", "trigger": "stalled", "after_hours": 2, "text": {"en": "Hi"}}]}
    from salesbot.agent.playbook import parse_playbook

    with pytest.raises(PlaybookError, match="needs a stage"):
        parse_playbook(data)


def test_the_shipped_playbook_has_follow_up_texts_in_every_language() -> None:
    policy = load_playbook().follow_ups
    assert {rule.name for rule in policy.rules} == {"quote_reminder", "solution_nudge"}
    for rule in policy.rules:
        assert all(getattr(rule.text, language) for language in ("en", "ar", "ru", "uk"))
