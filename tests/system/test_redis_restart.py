"""Redis restart with data loss: Redis is stopped (no persistence: queues, burst timers, claims, locks all gone)
and started again while customers write. Processes that exit on the lost connection are restarted, as the
deployment's restart policy does.

No duplicate reply; every message that got a 200 is answered (it was in PostgreSQL before the 200, and the
sweeps reschedule what lost its Redis job); what was lost is reported and is only what had not been
acknowledged (and was therefore delivered again by the provider).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from salesbot.models import Author, Channel, Direction, Owner
from tests.system.conftest import MakeSystem
from tests.system.harness import (
    Ack,
    Inbound,
    SystemConfig,
    check_every_turn_answered,
    twilio_chat,
    wazzup_chat,
    write_as_customer,
)

pytestmark = pytest.mark.system

QUESTIONS = (
    "Good morning, I need ten monitors for a new office",
    "Preferably twenty seven inch ones",
    "Do they come with HDMI cables?",
    "What is the delivery time?",
    "Could you prepare a quotation?",
)


async def run_redis_restart(
    make_system: MakeSystem,
    reliability: dict[str, Any],
    *,
    customers_count: int,
    messages: int,
    restart_at: list[float],
) -> None:
    config = SystemConfig(debounce_seconds=0.5, debounce_max_seconds=3, job_timeout_seconds=10, llm_model="redis-llm")
    async with make_system(config) as system:
        system.llm.latency = 0.3
        await system.start(workers=2)
        rng = random.Random(3)
        chats = [
            (twilio_chat(i), Channel.TWILIO) if i % 4 == 0 else (wazzup_chat(i), Channel.WAZZUP)
            for i in range(customers_count)
        ]
        load = asyncio.gather(
            *(write_as_customer(system, chat, channel, QUESTIONS, messages, rng) for chat, channel in chats)
        )
        outages = []
        total = customers_count * messages
        one_shot: list[Ack] = []
        for wave, fraction in enumerate(restart_at):
            # Restart when this share of the messages was written (mid-load, whatever the machine's speed).
            while len(system.webhooks.acks) < fraction * total and not load.done():
                await asyncio.sleep(0.05)
            # Customers who write once, just before the restart, and never again: their scheduled turns and burst
            # timers die with Redis, and no later message of theirs reschedules anything. Only the sweep can.
            last_words = [
                Inbound(Channel.WAZZUP, wazzup_chat(10_000 + 100 * wave + i), f"One question before I go ({i})")
                for i in range(10)
            ]
            one_shot += await asyncio.gather(*(system.webhooks.deliver(message) for message in last_words))
            down = system.services.restart_redis(down_seconds=0.5)
            outages.append({"redis_down_seconds": round(down, 2), "webhooks_before": len(system.webhooks.acks)})
        assert {ack.status for ack in one_shot} == {200}
        results = await load
        acks = [ack for acks in results for ack in acks] + one_shot
        settle_seconds = await system.settled(timeout=180)
        await asyncio.sleep(2)

        written = {ack.message.provider_message_id for ack in acks}
        acked = {ack.message.provider_message_id for ack in acks if ack.status == 200}
        assert acked == written
        check = await check_every_turn_answered(system, expect_ids=acked)
        statuses = Counter(ack.status for ack in acks)
        logs = system.logs()
        reliability.update(
            {
                "customers": len(chats),
                "messages": len(written),
                "acknowledged_messages_lost": len(acked) - check.customer_messages,
                "unacknowledged_attempts_redelivered": sum(n for status, n in statuses.items() if status != 200),
                "attempt_statuses": dict(statuses),
                "turns": check.turns,
                "replies_sent": check.sends,
                "duplicate_replies": check.sends - check.reply_messages,
                "messages_acknowledged_just_before_the_restart": len(one_shot),
                "process_restarts_after_redis_loss": [kind for kind, _ in system.supervisor.restarts],
                "turns_rescheduled_by_sweep": logs.count("turn.stalled_recovered"),
                "deliveries_rescheduled_by_sweep": logs.count("outbox.stalled_recovered"),
                "redis_outages": outages,
                "settled_after_seconds": round(settle_seconds, 1),
            }
        )


async def test_redis_restart_with_data_loss(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_redis_restart(make_system, reliability, customers_count=100, messages=5, restart_at=[0.4])


@pytest.mark.soak
async def test_redis_restart_with_data_loss_soak(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_redis_restart(make_system, reliability, customers_count=300, messages=20, restart_at=[0.2, 0.4, 0.6, 0.8])


async def test_a_takeover_survives_redis_data_loss(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    """A manager wrote from the Wazzup inbox; the job that records the takeover is lost with Redis before any
    worker ran it. The customer's next message must still get no bot reply: the human owns the chat."""
    async with make_system(SystemConfig(debounce_seconds=0.3, debounce_max_seconds=2)) as system:
        await system.start(workers=1)
        chat, control = wazzup_chat(1), wazzup_chat(2)
        for who in (chat, control):
            await system.webhooks.deliver(Inbound(Channel.WAZZUP, who, "Hello, do you sell office chairs?"))
        await system.replies_reached({chat: 1, control: 1}, timeout=60)
        await system.settled(timeout=60)

        worker = system.workers[0]
        worker.stop()
        assert await system.webhooks.manager_echo(chat, "Hi, this is Anna from sales, I will take it from here") == 200
        system.services.restart_redis()
        started = time.monotonic()
        worker.start()
        await worker.ready()
        for who in (chat, control):
            await system.webhooks.deliver(Inbound(Channel.WAZZUP, who, "Great, what colours do you have?"))
        await system.replies_reached({control: 2}, timeout=60)
        await system.settled(timeout=60)
        await asyncio.sleep(1)

        assert system.sent.count(chat) == 1, "the bot answered a chat a manager had taken over"
        rows = await system.db.rows()
        chat_of = await system.db.chats()
        conversation = next(cid for cid, who in chat_of.items() if who == chat)
        mine = [row for row in rows if row.conversation_id == conversation]
        assert [row.author for row in mine] == [Author.CUSTOMER, Author.BOT, Author.MANAGER, Author.CUSTOMER]
        assert all(row.processed_at is not None for row in mine if row.direction is Direction.INBOUND)
        owners = {c["id"]: c["owner"] for c in await system.db.conversations()}
        assert owners[conversation] is Owner.HUMAN
        reliability["takeover_recovered_seconds"] = round(time.monotonic() - started, 1)
