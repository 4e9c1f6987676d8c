"""Scale-out: 2 API processes and 3 workers against one PostgreSQL and one Redis, under a duplicate storm and
worker kills.

Every webhook is delivered 3 times: two copies at once to *different* API processes (each commits its copy in its
own group-commit batch, so the database's unique key decides between two processes' transactions), and a late copy
to either. Meanwhile the longest-running of the three workers is SIGKILLed every few seconds and started again.
Each customer writes a burst, waits for the reply, then writes a second burst.

Asserted: every webhook copy answered 200; each message stored exactly once; each turn exactly one reply, sent
once (none repeated by a worker re-running a killed job, no echo taken for a manager); each burst that arrived
within the silence window one turn; every customer answered for each burst; nothing left pending.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from salesbot.models import Author, Channel, DeliveryStatus, Direction, Owner
from tests.system.conftest import MakeSystem
from tests.system.harness import (
    WAZZUP_SECRET,
    Ack,
    Inbound,
    SalesbotProcess,
    System,
    SystemConfig,
    Webhooks,
    chat_tag,
    letters,
    percentile,
    twilio_chat,
    wazzup_chat,
)

pytestmark = pytest.mark.system

DEBOUNCE = 1.0
# Five processes starting at once take over a minute on a loaded 2-core machine.
READY_TIMEOUT = 240
CUSTOMERS = 24
BURSTS = (
    ("Hello! Do you have ergonomic office chairs?", "And standing desks?", "How fast is delivery to Dubai Marina?"),
    ("Thanks. Is there a warranty?", "Can we pay by invoice?"),
)


async def storm_burst(
    apis: list[Webhooks], burst: list[Inbound], rng: random.Random, late: list[asyncio.Task[Ack]]
) -> list[Ack]:
    """Type the burst (a message every ~0.1 s); each message goes to both API processes at once, and once more
    a few seconds later to either."""

    async def late_copy(message: Inbound, delay: float) -> Ack:
        await asyncio.sleep(delay)
        return await rng.choice(apis).deliver_until_acked(message)

    async def send(message: Inbound, delay: float) -> list[Ack]:
        await asyncio.sleep(delay)
        acks = await asyncio.gather(*(api.deliver_until_acked(message) for api in apis))
        late.append(asyncio.create_task(late_copy(message, rng.uniform(1.0, 3.0))))
        return list(acks)

    sent = await asyncio.gather(*(send(m, k * rng.uniform(0.05, 0.15)) for k, m in enumerate(burst)))
    return [ack for acks in sent for ack in acks]


def webhooks_to(api: SalesbotProcess) -> Webhooks:
    """A provider's deliveries to one API process (the load balancer picked it)."""
    return Webhooks(lambda: api.url)


async def kill_loop(system: System, stop: asyncio.Event, rng: random.Random, *, every: float) -> int:
    """Every few seconds SIGKILL the worker that has run longest and start it again at once; returns the kills.

    The next kill waits until the restarted worker is up again (seconds on an idle machine, a minute on a loaded
    one): killing workers faster than they start kills the same jobs again and again, and a turn killed three
    times is handed to a manager by design, which is not what this scenario is about.
    """
    order: list[SalesbotProcess] = list(system.workers)
    kills = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(every * 0.5, every * 1.5))
            return kills
        except TimeoutError:
            pass
        victim = order.pop(0)
        order.append(victim)
        victim.kill()
        kills += 1
        victim.start()
        await victim.ready(timeout=READY_TIMEOUT)
    return kills


async def test_two_apis_three_workers_duplicate_storm_and_worker_kills(
    make_system: MakeSystem, reliability: dict[str, Any]
) -> None:
    config = SystemConfig(
        debounce_seconds=DEBOUNCE,
        debounce_max_seconds=4,
        # A killed worker's job is re-run after arq's lease: job timeout + 10 s. The turn budget (half the job
        # timeout by default) must cover a turn on a 2-core machine running five salesbot processes and
        # PostgreSQL: a turn past its budget hands the chat to a manager, and the next burst gets no bot reply.
        job_timeout_seconds=15,
        llm_model="scale-llm",
        llm_timeout_seconds=4,
        # Ten turn slots per worker, as in the kill loop: a kill loses every turn its worker holds, and a message
        # whose turn is started three times is handed to a manager by design (TURN_ATTEMPTS).
        extra_env={"TURN_BUDGET_SECONDS": "12", "WORKER_MAX_JOBS": "10"},
    )
    async with make_system(config) as system:
        system.llm.latency = 0.3
        # Accepted sends are answered late: some kills land after the provider took the message.
        system.provider.stall_after_accept = 0.2
        await system.start(workers=3, apis=2, timeout=READY_TIMEOUT)
        assert len(system.apis) == 2
        apis = [webhooks_to(api) for api in system.apis]
        # Wazzup echoes every bot send back (to the second API process) before answering the send call.
        system.provider.wazzup_echo_url = f"{system.apis[1].url}/webhooks/wazzup/{WAZZUP_SECRET}"
        rng = random.Random(14)
        chats = [
            (twilio_chat(i), Channel.TWILIO) if i % 4 == 0 else (wazzup_chat(i), Channel.WAZZUP)
            for i in range(CUSTOMERS)
        ]
        bursts: dict[str, list[list[Inbound]]] = defaultdict(list)
        originals: list[Ack] = []
        late: list[asyncio.Task[Ack]] = []

        async def customer(position: int, chat: str, channel: Channel) -> None:
            await asyncio.sleep(position * 0.1)
            for number, texts in enumerate(BURSTS):
                tag = f"{chat_tag(chat)}, burst {letters(number, 1)}"
                burst = [
                    Inbound(channel, chat, f"{text} ({tag}, part {letters(k, 1)})") for k, text in enumerate(texts)
                ]
                bursts[chat].append(burst)
                originals.extend(await storm_burst(apis, burst, rng, late))
                await system.replies_reached({chat: number + 1}, timeout=150)
                await asyncio.sleep(rng.uniform(0.2, 1.0))

        stop = asyncio.Event()
        killer = asyncio.create_task(kill_loop(system, stop, rng, every=5.0))
        started = time.monotonic()
        try:
            await asyncio.gather(*(customer(i, chat, channel) for i, (chat, channel) in enumerate(chats)))
            late_acks = list(await asyncio.gather(*late))
        finally:
            stop.set()
            kills = await killer
            for webhooks in apis:
                await webhooks.close()
        load_seconds = time.monotonic() - started
        for worker in system.workers:
            await worker.ready(timeout=READY_TIMEOUT)
        settle_seconds = await system.settled(timeout=120)
        # Anything a killed worker left half-done has been re-run by now; give a duplicate the chance to show up.
        await asyncio.sleep(2)

        messages = [message for chat_bursts in bursts.values() for burst in chat_bursts for message in burst]
        acks = originals + late_acks
        assert Counter(ack.status for ack in acks) == {200: len(messages) * 3}
        # Both processes stored (they shared the storm), and each message exactly once.
        counts = await system.inbound_counts()
        assert set(counts) == {message.provider_message_id for message in messages}
        assert set(counts.values()) == {1}
        # Both API processes took their share: each answered its copy of every message.
        assert [Counter(ack.status for ack in webhooks.acks)[200] >= len(messages) for webhooks in apis] == [True, True]
        stored_by_api = [
            sum(int(n) for n in re.findall(r"inbox\.message_stored messages=(\d+)", api.log_text()))
            for api in system.apis
        ]
        assert sum(stored_by_api) == len(messages)

        # Turns: the customer messages each turn consumed; each has exactly one bot reply, sent.
        rows = await system.db.rows()
        turns: dict[tuple[int, object], list[Any]] = defaultdict(list)
        for row in rows:
            if row.direction is Direction.INBOUND:
                turns[(row.conversation_id, row.processed_at)].append(row)
        bot_rows = [row for row in rows if row.author is Author.BOT]
        replies = {row.in_reply_to_id: row for row in bot_rows}
        assert len(replies) == len(bot_rows), "two replies to one turn"
        assert not [row for row in rows if row.author is Author.MANAGER], "an own echo was taken for a manager"
        chat_of = await system.db.chats()
        expected_sends: Counter[str] = Counter()
        for group in turns.values():
            reply = replies[max(row.id for row in group)]
            wazzup = not chat_of[reply.conversation_id].startswith("whatsapp:")
            assert reply.delivery_status in (
                (DeliveryStatus.SENT, DeliveryStatus.DELIVERED) if wazzup else (DeliveryStatus.SENT,)
            )
            expected_sends[chat_of[reply.conversation_id]] += 1
        # No duplicate sends: each chat received exactly its turns' replies (a killed job re-run after the provider
        # took its message must not send it again), and Wazzup never sent a message twice.
        by_chat = system.sent.refresh()
        assert {chat: len(by_chat.get(chat, [])) for chat, _ in chats} == dict(expected_sends)
        assert system.wazzup_api.duplicates == 0
        assert await system.db.unfinished() == (0, 0)
        assert {c["owner"] for c in await system.db.conversations()} == {Owner.BOT}

        # A burst acknowledged within the silence window is one turn with one reply (whether it was depends on
        # the machine's load: checked for every burst that was, and counted).
        turn_of = {row.provider_message_id: key for key, group in turns.items() for row in group}
        one_turn = 0
        for chat_bursts in bursts.values():
            for burst in chat_bursts:
                ids = {message.provider_message_id for message in burst}
                own = [ack for ack in originals if ack.message.provider_message_id in ids]
                if max(a.acked_at for a in own) - min(a.sent_at for a in own) < DEBOUNCE:
                    one_turn += 1
                    assert len({turn_of[i] for i in ids}) == 1, "a burst inside the window was split"

        latencies = [ack.acked_at - ack.sent_at for ack in acks]
        logs = system.logs()
        reliability.update(
            {
                "api_processes": len(system.apis),
                "workers": len(system.workers),
                "customers": len(chats),
                "webhook_requests": len(acks),
                "stored_messages": len(counts),
                "stored_by_api_process": stored_by_api,
                "duplicates_dropped_by_inbox": logs.count("inbox.duplicate_dropped"),
                "bursts": sum(len(b) for b in bursts.values()),
                "bursts_inside_window_one_turn": one_turn,
                "turns": len(turns),
                "replies_sent": sum(expected_sends.values()),
                "worker_kills": kills,
                "wazzup_resends_refused_as_repeated": system.wazzup_api.repeats,
                "twilio_sends_reconciled": logs.count("outbox.reconciled"),
                "own_echoes_recognised": system.provider.echoes_posted,
                "webhook_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
                "webhook_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "load_seconds": round(load_seconds, 1),
                "settled_after_load_seconds": round(settle_seconds, 1),
            }
        )
