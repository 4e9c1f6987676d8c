"""STOP takes effect when the webhook carrying it is acknowledged: the customer is opted out and every automated
message still waiting to leave is withdrawn in the inbox transaction; the turn only writes the confirmation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from salesbot.conversations import consent
from salesbot.conversations.turn import run_turn
from salesbot.models import Author, Channel, DeliveryStatus, Direction, Message
from salesbot.models._columns import utcnow
from salesbot.outbox.service import schedule_delivery
from salesbot.settings import ConversationSettings
from tests.fakes.pipeline import Pipeline
from tests.fakes.provider_api import Sent

CHAT = "79990003344"
PARAGRAPHS = [f"Paragraph {n}. " + "More words follow here. " * 3 for n in range(4)]
UNSUBSCRIBED = consent.confirmation(consent.Command.OPT_OUT, "STOP")


async def _outbound(pipeline: Pipeline) -> list[Message]:
    return await pipeline.messages(direction=Direction.OUTBOUND)


@pytest.mark.parametrize("pipeline_overrides", [{"wazzup": {"max_text_length": 120}}])
async def test_stop_while_a_multi_part_reply_is_being_sent_stops_the_rest(pipeline: Pipeline) -> None:
    """Fails on the old inbox: STOP waited for its turn (after the debounce) while the parts kept leaving."""
    pipeline.generator.reply = lambda request: "\n\n".join(PARAGRAPHS)
    stop_acknowledged: list[int] = []

    async def customer_sends_stop(sent: Sent) -> None:
        # The first part is at Wazzup, its answer not back yet: the customer's STOP webhook arrives now.
        if not stop_acknowledged and sent.text and sent.text.startswith("Paragraph 0"):
            stop_acknowledged.append((await pipeline.wazzup_text(CHAT, "STOP")).status_code)

    pipeline.wazzup_api.on_accept = customer_sends_stop
    await pipeline.wazzup_text(CHAT, "tell me everything")
    await pipeline.worker.drain()

    assert stop_acknowledged == [200]
    sent = [s.text or "" for s in pipeline.wazzup_api.sent]
    assert len(sent) == 2
    assert sent[0].startswith("Paragraph 0")
    assert sent[1] == UNSUBSCRIBED
    rows = await _outbound(pipeline)
    parts = [row for row in rows if row.author is Author.BOT]
    assert len(parts) > 2
    # The part in flight went out (the provider said so); every later part was withdrawn.
    assert parts[0].delivery_status is DeliveryStatus.SENT
    assert {(row.delivery_status, row.error) for row in parts[1:]} == {(DeliveryStatus.CANCELLED, "opted_out")}
    [confirmation] = [row for row in rows if row.author is Author.SYSTEM]
    assert confirmation.delivery_status is DeliveryStatus.SENT
    [customer] = await pipeline.customers()
    assert customer.opted_out_at is not None


async def test_stop_is_in_force_when_its_webhook_is_acknowledged(pipeline: Pipeline) -> None:
    """Fails on the old inbox: nothing changed until the STOP's turn ran."""
    await pipeline.wazzup_text(CHAT, "price of the projector?")
    [conversation] = await pipeline.conversations()
    await pipeline.redis.flushdb()  # this test runs the turn and the delivery by hand
    assert (await run_turn(pipeline.resources, pipeline.generator, conversation.id)).result == "replied"
    [reply] = await _outbound(pipeline)
    assert reply.delivery_status is DeliveryStatus.PENDING

    assert (await pipeline.wazzup_text(CHAT, "stop")).status_code == 200
    # No worker has run: the webhook's own transaction did it.
    [customer] = await pipeline.customers()
    [stop] = [m for m in await pipeline.messages(direction=Direction.INBOUND) if m.text == "stop"]
    assert customer.opted_out_at == stop.created_at
    [reply] = await _outbound(pipeline)
    assert (reply.delivery_status, reply.error) == (DeliveryStatus.CANCELLED, "opted_out")

    await schedule_delivery(pipeline.redis, conversation.id)
    await pipeline.worker.drain()
    # The STOP's turn wrote the confirmation only; it is the one message that leaves.
    assert [s.text for s in pipeline.wazzup_api.sent] == [UNSUBSCRIBED]
    assert [call.texts for call in pipeline.generator.calls] == [("price of the projector?",)]


async def test_second_stop_is_not_confirmed_again(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "STOP")
    await pipeline.worker.drain()
    [customer] = await pipeline.customers()
    first_opt_out = customer.opted_out_at
    await pipeline.wazzup_text(CHAT, "STOP")
    await pipeline.worker.drain()

    assert [s.text for s in pipeline.wazzup_api.sent] == [UNSUBSCRIBED]
    [customer] = await pipeline.customers()
    assert customer.opted_out_at == first_opt_out


async def test_pending_confirmation_survives_a_second_stop(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "STOP")
    [conversation] = await pipeline.conversations()
    await pipeline.redis.flushdb()  # the turn runs by hand, delivery later
    assert (await run_turn(pipeline.resources, pipeline.generator, conversation.id)).result == "silent_opted_out"
    assert (await pipeline.wazzup_text(CHAT, "STOP")).status_code == 200

    [confirmation] = await _outbound(pipeline)
    assert (confirmation.author, confirmation.delivery_status) == (Author.SYSTEM, DeliveryStatus.PENDING)
    await schedule_delivery(pipeline.redis, conversation.id)
    await pipeline.worker.drain()
    assert [s.text for s in pipeline.wazzup_api.sent] == [UNSUBSCRIBED]


# --- replaying a burst's keywords --------------------------------------------------------------------------------


def _burst(*texts: str) -> list[Message]:
    start = utcnow()
    return [
        Message(id=index + 1, channel=Channel.WAZZUP, text=text, created_at=start + timedelta(seconds=index))
        for index, text in enumerate(texts)
    ]


def test_replay_confirms_a_stop_the_inbox_already_applied() -> None:
    burst = _burst("hi", "STOP")
    replayed = consent.replay(burst, ConversationSettings(), opted_out_at=burst[1].created_at)
    assert [(command, m.text) for command, m in replayed.confirmations] == [(consent.Command.OPT_OUT, "STOP")]
    assert (replayed.changed, replayed.opted_out_at, replayed.agent_messages) == (True, burst[1].created_at, [])


def test_replay_starts_opted_out_when_the_opt_out_predates_the_burst() -> None:
    burst = _burst("STOP", "START", "what laptops do you have?")
    replayed = consent.replay(burst, ConversationSettings(), opted_out_at=burst[0].created_at - timedelta(days=1))
    assert [command for command, _ in replayed.confirmations] == [consent.Command.OPT_IN]
    assert (replayed.changed, replayed.opted_out_at) == (True, None)
    assert [m.text for m in replayed.agent_messages] == ["what laptops do you have?"]


def test_replay_leaves_a_newer_stop_alone() -> None:
    burst = _burst("hello")
    # A STOP stored after this burst was taken: the burst has no command, the stored state stands.
    newer = burst[0].created_at + timedelta(seconds=5)
    replayed = consent.replay(burst, ConversationSettings(), opted_out_at=newer)
    assert (replayed.changed, replayed.opted_out_at, replayed.confirmations) == (False, newer, [])
