"""Follow-ups through the real pipeline: the console provider, the turn job, the outbox's delivery job and gate."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from salesbot.agent.playbook import load_playbook
from salesbot.db import unit_of_work
from salesbot.followups.service import run_follow_ups
from salesbot.followups.tasks import follow_up_conversations
from salesbot.messaging.registry import build_providers
from salesbot.models import DeliveryStatus, Direction, FollowUp, FollowUpStatus, Message, Quote
from salesbot.models._columns import utcnow
from tests.fakes.pipeline import Pipeline

PHONE = "+971 50 123 4567"


async def quote_for_the_chat(pipeline: Pipeline) -> None:
    await pipeline.console(PHONE, "I need 12 laptops for the office")
    await pipeline.worker.drain()
    [conversation] = await pipeline.conversations()
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        session.add(
            Quote(conversation_id=conversation.id, items=[], subtotal=Decimal(9), total=Decimal(9), currency="AED")
        )


async def follow_up_messages(pipeline: Pipeline) -> list[Message]:
    async with pipeline.resources.sessionmaker() as session:
        rows = await session.scalars(
            select(Message).where(Message.idempotency_key.like("followup:%")).order_by(Message.id)
        )
        return list(rows)


async def test_the_cron_job_writes_the_reminder_and_the_outbox_delivers_it(pipeline: Pipeline) -> None:
    await quote_for_the_chat(pipeline)
    # The cron job itself, at the real clock: the quote is fresh, the reminder is only scheduled.
    ctx = {"resources": pipeline.resources, "providers": build_providers(pipeline.resources)}
    assert await follow_up_conversations(ctx) == "scheduled=1 sent=0 cancelled=0 skipped=0"  # type: ignore[arg-type]

    later = utcnow() + timedelta(hours=4, minutes=1)
    run = await run_follow_ups(pipeline.resources, load_playbook(), build_providers(pipeline.resources), now=later)
    assert run.sent == 1
    from salesbot.outbox.service import schedule_delivery

    for conversation_id in run.deliver:
        await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    [message] = await follow_up_messages(pipeline)
    assert message.delivery_status is DeliveryStatus.SENT
    assert message.text.startswith("Hi again! Did you have a chance to look at the quotation?")


async def test_stop_after_the_reminder_was_written_keeps_it_from_leaving(pipeline: Pipeline) -> None:
    await quote_for_the_chat(pipeline)
    later = utcnow() + timedelta(hours=4, minutes=1)
    run = await run_follow_ups(pipeline.resources, load_playbook(), build_providers(pipeline.resources), now=later)
    assert run.sent == 1
    # The customer says STOP before the delivery job ran: the outbox's gate cancels the automated message.
    await pipeline.console(PHONE, "STOP")
    await pipeline.worker.drain()

    [message] = await follow_up_messages(pipeline)
    assert (message.delivery_status, message.error) == (DeliveryStatus.CANCELLED, "opted_out")
    async with pipeline.resources.sessionmaker() as session:
        [row] = await session.scalars(select(FollowUp))
    assert row.status is FollowUpStatus.SENT
    inbound = await pipeline.messages(direction=Direction.INBOUND)
    assert [m.text for m in inbound] == ["I need 12 laptops for the office", "STOP"]


async def test_a_reminder_the_customer_wrote_after_is_dropped_and_the_turn_answers(pipeline: Pipeline) -> None:
    await quote_for_the_chat(pipeline)
    later = utcnow() + timedelta(hours=4, minutes=1)
    run = await run_follow_ups(pipeline.resources, load_playbook(), build_providers(pipeline.resources), now=later)
    assert run.sent == 1
    # The customer writes between the cron run and the delivery job: the reminder would arrive after their message.
    await pipeline.console(PHONE, "Yes, we approve the quote")
    await pipeline.worker.drain()

    [message] = await follow_up_messages(pipeline)
    assert (message.delivery_status, message.error) == (DeliveryStatus.CANCELLED, "customer_replied")
    answers = [m for m in await pipeline.messages(direction=Direction.OUTBOUND) if m.id != message.id]
    assert [m.delivery_status for m in answers] == [DeliveryStatus.SENT, DeliveryStatus.SENT]
    assert answers[-1].in_reply_to_id == (await pipeline.messages(direction=Direction.INBOUND))[-1].id
