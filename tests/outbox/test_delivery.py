"""Delivery through the real worker against the faked provider HTTP APIs: retries, failures, the gate,
splitting, reconciliation and statuses."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update

from salesbot.conversations import service as conversations
from salesbot.conversations.turn import run_turn
from salesbot.messaging.console import read_replies
from salesbot.models import Author, Conversation, Customer, DeliveryStatus, Direction, Message
from salesbot.models._columns import utcnow
from salesbot.outbox.service import schedule_delivery
from salesbot.outbox.tasks import sweep_stalled_outbox
from salesbot.worker_context import WorkerContext
from tests.fakes.pipeline import TWILIO_TOKEN, Pipeline, twilio_params, wazzup_message
from tests.fakes.provider_api import NETWORK_ERROR

CHAT = "79990001122"
TWILIO_CHAT = "whatsapp:+14155550123"


async def only_conversation_id(pipeline: Pipeline) -> int:
    [conversation] = await pipeline.conversations()
    return conversation.id


async def outbound_rows(pipeline: Pipeline) -> list[Message]:
    return await pipeline.messages(direction=Direction.OUTBOUND)


async def reply_without_delivery(pipeline: Pipeline, *, twilio: bool = False, text: str = "hello") -> int:
    """Store a customer message and run its turn, leaving the reply pending in the outbox."""
    if twilio:
        await pipeline.twilio(twilio_params(TWILIO_CHAT, text))
    else:
        await pipeline.wazzup_text(CHAT, text)
    conversation_id = await only_conversation_id(pipeline)
    await pipeline.redis.flushdb()  # drop the scheduled turn: this test runs it by hand
    outcome = await run_turn(pipeline.resources, pipeline.generator, conversation_id)
    assert outcome.result == "replied"
    return conversation_id


async def test_provider_500_then_201_delivers_one_reply_after_a_retry(pipeline: Pipeline) -> None:
    pipeline.wazzup_api.fail_next.append((500, {"error": "UNKNOWN_ERROR", "description": "boom"}))
    await pipeline.wazzup_text(CHAT, "hello")
    worker = await pipeline.worker.drain()

    assert worker.jobs_retried >= 1
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: hello"]
    assert pipeline.wazzup_api.calls == 2
    [row] = await outbound_rows(pipeline)
    assert (row.delivery_status, row.send_attempts, row.error) == (DeliveryStatus.SENT, 2, None)


async def test_provider_network_errors_are_retried(pipeline: Pipeline) -> None:
    pipeline.wazzup_api.fail_next.extend([NETWORK_ERROR, NETWORK_ERROR])
    await pipeline.wazzup_text(CHAT, "hello")
    await pipeline.worker.drain()

    [row] = await outbound_rows(pipeline)
    assert (row.delivery_status, row.send_attempts) == (DeliveryStatus.SENT, 3)
    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: hello"]


async def test_provider_400_marks_the_message_failed_without_retrying(pipeline: Pipeline) -> None:
    pipeline.wazzup_api.fail_next.append(
        (400, {"status": 400, "error": "BAD_CONTACT", "description": "number is not on WhatsApp"})
    )
    await pipeline.wazzup_text(CHAT, "hello")
    await pipeline.worker.drain()
    # No retry storm: running the worker and the recovery sweep again sends nothing more.
    ctx: WorkerContext = {"resources": pipeline.resources}
    assert await sweep_stalled_outbox(ctx) == 0
    await pipeline.worker.drain()

    assert pipeline.wazzup_api.calls == 1
    assert pipeline.wazzup_api.sent == []
    [row] = await outbound_rows(pipeline)
    assert row.delivery_status is DeliveryStatus.FAILED
    assert row.error == "BAD_CONTACT: number is not on WhatsApp"
    assert row.send_attempts == 1
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention is True


async def test_transient_failures_give_up_after_the_attempt_budget(pipeline: Pipeline) -> None:
    for _ in range(10):
        pipeline.wazzup_api.fail_next.append((503, {}))
    await pipeline.wazzup_text(CHAT, "hello")
    await pipeline.worker.drain()

    max_attempts = pipeline.resources.settings.outbox.max_send_attempts
    assert pipeline.wazzup_api.calls == max_attempts
    [row] = await outbound_rows(pipeline)
    assert row.delivery_status is DeliveryStatus.FAILED
    assert row.error is not None
    assert f"gave up after {max_attempts} attempts" in row.error


@pytest.mark.parametrize("pipeline_overrides", [{"wazzup": {"max_text_length": 120}}])
async def test_long_reply_is_split_and_sent_in_order(pipeline: Pipeline) -> None:
    paragraphs = [f"Paragraph {n}. " + "More words follow here. " * 3 for n in range(5)]
    pipeline.generator.reply = lambda request: "\n\n".join(paragraphs)
    await pipeline.wazzup_text(CHAT, "tell me everything")
    await pipeline.worker.drain()

    sent = [s.text or "" for s in pipeline.wazzup_api.sent]
    assert len(sent) >= 5
    assert all(len(part) <= 120 for part in sent)
    assert " ".join(sent).split() == " ".join(paragraphs).split()
    rows = await outbound_rows(pipeline)
    assert [row.part_index for row in rows] == list(range(len(sent)))
    assert rows[0].model == "test-double"  # the turn record sits on the first part
    assert len({row.idempotency_key for row in rows}) == len(rows)


async def test_takeover_after_the_turn_cancels_the_pending_reply(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline)
    async with pipeline.resources.sessionmaker() as session:
        await conversations.take_over(session, conversation_id, hours=1)
        await session.commit()
        # The manager answers through the admin: that message is delivered, the bot's is not.
        await conversations.send_manager_message(
            session, conversation_id, "Manager here.", settings=pipeline.resources.settings
        )
        await session.commit()
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Manager here."]
    rows = await outbound_rows(pipeline)
    assert [(r.author, r.delivery_status, r.error) for r in rows] == [
        (Author.BOT, DeliveryStatus.CANCELLED, "human_takeover"),
        (Author.MANAGER, DeliveryStatus.SENT, None),
    ]


async def test_gate_rechecks_ownership_right_before_sending(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline)
    # Ownership changes without the service (so nothing cancels the row): only the gate can stop it.
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(owner="human", owner_until=utcnow() + timedelta(hours=1))
        )
        await session.commit()
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert pipeline.wazzup_api.calls == 0
    [row] = await outbound_rows(pipeline)
    assert (row.delivery_status, row.error) == (DeliveryStatus.CANCELLED, "human_owner")


async def test_opted_out_customer_still_gets_manager_messages(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline)
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(update(Customer).values(opted_out_at=utcnow()))
        await conversations.send_manager_message(
            session, conversation_id, "Your order shipped.", settings=pipeline.resources.settings
        )
        await session.commit()
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Your order shipped."]


async def _age_inbound(pipeline: Pipeline, hours: float) -> None:
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(
            update(Message)
            .where(Message.direction == Direction.INBOUND)
            .values(created_at=utcnow() - timedelta(hours=hours))
        )
        await session.commit()


async def test_closed_window_without_template_fails_and_flags_a_manager(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline, twilio=True)
    await _age_inbound(pipeline, 25)
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert pipeline.twilio_api.calls == 0
    [row] = await outbound_rows(pipeline)
    assert row.delivery_status is DeliveryStatus.FAILED
    assert row.error is not None
    assert row.error.startswith("window_closed")
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention is True


@pytest.mark.parametrize("pipeline_overrides", [{"twilio": {"window_template_sid": "HX0123456789abcdef"}}])
async def test_closed_window_sends_the_configured_template_instead(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline, twilio=True)
    await _age_inbound(pipeline, 30)
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    [sent] = pipeline.twilio_api.sent
    assert (sent.template, sent.text) == ("HX0123456789abcdef", None)
    [row] = await outbound_rows(pipeline)
    assert (row.delivery_status, row.content_type) == (DeliveryStatus.SENT, "template")


async def test_twilio_send_interrupted_by_a_crash_is_reconciled_not_repeated(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline, twilio=True, text="hi")
    [row] = await outbound_rows(pipeline)
    # The crashed attempt: recorded in our database, accepted by Twilio, its answer never processed.
    pipeline.twilio_api.handle(
        "POST",
        "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json",
        {"authorization": _basic()},
        urlencode({"To": TWILIO_CHAT, "From": "whatsapp:+14155238886", "Body": row.text}).encode(),
    )
    await _record_attempt(pipeline, row.id)
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    assert pipeline.twilio_api.posts == 1
    [row] = await outbound_rows(pipeline)
    assert row.delivery_status is DeliveryStatus.SENT
    assert row.provider_message_id == pipeline.twilio_api.sent[0].provider_message_id


async def _record_attempt(pipeline: Pipeline, message_id: int, *, seconds_ago: float = 0.0) -> None:
    """What the deliverer commits right before its HTTP call (and a killed worker leaves behind)."""
    started = utcnow() - timedelta(seconds=seconds_ago)
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(send_attempts=Message.send_attempts + 1, last_attempt_at=started, uncertain_since=started)
        )
        await session.commit()


def _basic() -> str:
    return "Basic " + base64.b64encode(f"AC00000000000000000000000000000000:{TWILIO_TOKEN}".encode()).decode()


async def test_status_arriving_before_the_send_returns_is_applied(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline, twilio=True)
    pipeline.twilio_api.next_sids.append("SMearly0000000000000000000000000001")
    status = [("MessageSid", "SMearly0000000000000000000000000001"), ("MessageStatus", "delivered")]
    assert (await pipeline.twilio(status, path="/webhooks/twilio/status")).status_code == 200
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()

    [row] = await outbound_rows(pipeline)
    assert (row.provider_message_id, row.delivery_status) == (
        "SMearly0000000000000000000000000001",
        DeliveryStatus.DELIVERED,
    )


async def test_echo_arriving_before_the_send_returns_is_recognised_as_the_bots(pipeline: Pipeline) -> None:
    conversation_id = await reply_without_delivery(pipeline)
    [row] = await outbound_rows(pipeline)
    # The deliverer recorded its attempt and called Wazzup; the echo webhook comes before the answer.
    await _record_attempt(pipeline, row.id)
    echo = wazzup_message(CHAT, row.text, message_id="aaaaaaaa-1111-2222-3333-444444444444", isEcho=True, status="sent")
    assert (await pipeline.wazzup({"messages": [echo]})).status_code == 200
    await pipeline.worker.drain()

    [conversation] = await pipeline.conversations()
    assert conversation.owner.value == "bot"
    [row] = await outbound_rows(pipeline)
    assert (row.author, row.provider_message_id, row.delivery_status) == (
        Author.BOT,
        "aaaaaaaa-1111-2222-3333-444444444444",
        DeliveryStatus.SENT,
    )
    # Not pending any more, so never sent again.
    await schedule_delivery(pipeline.redis, conversation_id)
    await pipeline.worker.drain()
    assert pipeline.wazzup_api.calls == 0


@pytest.mark.parametrize("pipeline_overrides", [{"outbox": {"pacing_seconds": 0.05}}])
async def test_console_replies_are_readable_by_cursor(pipeline: Pipeline) -> None:
    pipeline.generator.reply = lambda request: "First paragraph." + "\n\n" + "x" * 4000
    await pipeline.console("+15550100", "hi")
    await pipeline.worker.drain()

    replies = await read_replies(pipeline.redis, "+1 555 0100")
    assert [r.text for r in replies] == ["First paragraph.", "x" * 4000]
    assert await read_replies(pipeline.redis, "+15550100", after=replies[0].cursor) == replies[1:]
    assert await read_replies(pipeline.redis, "+15550100", after=replies[-1].cursor) == []
    rows = await outbound_rows(pipeline)
    assert [r.provider_message_id for r in rows] == [r.message_id for r in replies]
    # Parts to one recipient are paced (the recipient's next free slot is tracked in Redis).
    assert await pipeline.redis.keys("sb:outbox:pace:console:*")


async def test_stalled_pending_rows_are_recovered_by_the_sweep(pipeline: Pipeline) -> None:
    await reply_without_delivery(pipeline)
    async with pipeline.resources.sessionmaker() as session:
        await session.execute(update(Message).values(created_at=utcnow() - timedelta(minutes=5)))
        await session.commit()
    ctx: WorkerContext = {"resources": pipeline.resources}
    assert await sweep_stalled_outbox(ctx) == 1
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == ["Answer to: hello"]
    async with pipeline.resources.sessionmaker() as session:
        pending = await session.scalars(select(Message).where(Message.delivery_status == DeliveryStatus.PENDING))
        assert list(pending) == []
