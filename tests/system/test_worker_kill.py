"""Worker kill loop: 100 customers talk to the bot while one of the two workers is SIGKILLed every few seconds and
started again. Kills land anywhere: while a turn waits for the LLM, between the provider accepting a reply and
the worker hearing about it (the fake provider answers accepted sends late), during commits.

Every burst gets exactly one reply (Wazzup refuses a resent `crmMessageId`; for Twilio the outbox looks the
message up before sending again), and nothing stays pending. The worst recovery time is reported: for each
kill, how long until every customer who was waiting at that moment had the reply.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from salesbot.models import Author, Channel, DeliveryStatus, Direction
from tests.system.conftest import MakeSystem
from tests.system.harness import (
    Inbound,
    SalesbotProcess,
    System,
    SystemConfig,
    chat_tag,
    letters,
    percentile,
    twilio_chat,
    wazzup_chat,
)

pytestmark = pytest.mark.system

QUESTIONS = (
    "Hi, what laptops do you have for an accounting team?",
    "Which of them has the longest battery life?",
    "Can you deliver next week to our office?",
    "Do you offer a warranty extension?",
    "Thanks, what are the payment options?",
)


@dataclass
class Kill:
    at: float
    # chat -> how many replies it had received when the kill happened and is waiting for the next one.
    waiting: dict[str, int] = field(default_factory=dict)


async def customer(system: System, chat: str, channel: Channel, rounds: int, rng: random.Random) -> int:
    """Send `rounds` single-message bursts, each after the previous one was answered; returns bursts answered."""
    await asyncio.sleep(rng.uniform(0, 3))
    for turn in range(rounds):
        message = Inbound(channel, chat, f"{QUESTIONS[turn % len(QUESTIONS)]} ({chat_tag(chat)} {letters(turn, 2)})")
        ack = await system.webhooks.deliver_until_acked(message, timeout=60)
        assert ack.status == 200, ack
        await system.replies_reached({chat: turn + 1}, timeout=120)
        await asyncio.sleep(rng.uniform(0.2, 1.5))
    return rounds


async def kill_loop(
    system: System, stop: asyncio.Event, kills: list[Kill], rng: random.Random, *, every: float
) -> None:
    """Every few seconds SIGKILL the worker that has run longest and start it again at once.

    The next kill waits until the restarted worker is up again: a worker needs a few seconds to start (imports,
    model warm-up), and killing it before it took any job would prove nothing.
    """
    order: list[SalesbotProcess] = list(system.workers)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(every * 0.5, every * 1.5))
            return
        except TimeoutError:
            pass
        victim = order.pop(0)
        order.append(victim)
        # Customers whose latest message has no reply yet (each customer waits for its reply before writing on).
        by_chat = system.sent.refresh()
        written = Counter(ack.message.chat for ack in system.webhooks.acks if ack.status == 200)
        outstanding = {
            chat: len(by_chat.get(chat, [])) for chat, count in written.items() if count > len(by_chat.get(chat, []))
        }
        victim.kill()
        kills.append(Kill(at=time.time(), waiting=outstanding))
        victim.start()
        await victim.ready()


async def run_kill_loop(
    make_system: MakeSystem, reliability: dict[str, Any], *, customers_count: int, rounds: int, every: float
) -> None:
    config = SystemConfig(
        debounce_seconds=0.5,
        debounce_max_seconds=3,
        # Crash recovery waits for arq's lease on a killed worker's job: job timeout + 10 s.
        job_timeout_seconds=6,
        llm_model="kill-llm",
        llm_timeout_seconds=2,
    )
    async with make_system(config) as system:
        system.llm.latency = 0.4
        # Accepted sends are answered late: some kills land after the provider took the message.
        system.provider.stall_after_accept = 0.3
        await system.start(workers=2)
        rng = random.Random(11)
        chats = [
            (twilio_chat(i), Channel.TWILIO) if i % 4 == 0 else (wazzup_chat(i), Channel.WAZZUP)
            for i in range(customers_count)
        ]
        stop = asyncio.Event()
        kills: list[Kill] = []
        killer = asyncio.create_task(kill_loop(system, stop, kills, rng, every=every))
        started = time.monotonic()
        try:
            answered = await asyncio.gather(*(customer(system, chat, ch, rounds, rng) for chat, ch in chats))
        finally:
            stop.set()
            await killer
        conversation_seconds = time.monotonic() - started
        for worker in system.workers:
            await worker.ready()
        settle_seconds = await system.settled(timeout=120)
        # Anything a killed worker left half-done has been re-run by now; give a duplicate the chance to show up.
        await asyncio.sleep(2)

        assert answered == [rounds] * len(chats)
        by_chat = system.sent.refresh()
        assert {chat: len(by_chat.get(chat, [])) for chat, _ in chats} == {chat: rounds for chat, _ in chats}
        rows = await system.db.rows()
        inbound = [row for row in rows if row.direction is Direction.INBOUND]
        replies = [row for row in rows if row.author is Author.BOT]
        assert len(inbound) == len({row.provider_message_id for row in inbound}) == len(chats) * rounds
        assert sorted(row.in_reply_to_id or 0 for row in replies) == sorted(row.id for row in inbound)
        assert {row.delivery_status for row in replies} == {DeliveryStatus.SENT}
        assert await system.db.unfinished() == (0, 0)

        # Per kill: until every customer waiting at that moment had the reply.
        recoveries = []
        for kill in kills:
            done_at = [by_chat[chat][count].at for chat, count in kill.waiting.items()]
            recoveries.append(max(done_at) - kill.at if done_at else 0.0)
        logs = system.logs()
        reliability.update(
            {
                "customers": len(chats),
                "bursts": len(inbound),
                "replies_sent": system.sent.total(),
                "worker_kills": len(kills),
                "kills_with_customers_waiting": sum(1 for kill in kills if kill.waiting),
                "job_lease_seconds": config.job_timeout_seconds + 10,
                "worst_recovery_seconds": round(max(recoveries, default=0.0), 1),
                "median_recovery_seconds": round(percentile(recoveries, 0.5), 1),
                "wazzup_resends_refused_as_repeated": system.wazzup_api.repeats,
                "twilio_sends_reconciled": logs.count("outbox.reconciled"),
                "stalled_turns_recovered_by_sweep": logs.count("turn.stalled_recovered"),
                "conversation_seconds": round(conversation_seconds, 1),
                "settled_after_seconds": round(settle_seconds, 1),
            }
        )


async def test_worker_kill_loop(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_kill_loop(make_system, reliability, customers_count=100, rounds=3, every=3.0)


@pytest.mark.soak
async def test_worker_kill_loop_soak(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_kill_loop(make_system, reliability, customers_count=300, rounds=10, every=2.0)
