"""Duplicate storm: 200 customers x 3 messages, every webhook delivered 3 times (two copies concurrently, the third
seconds later, often after the reply went out), through the real API and two real workers.

Exactly one stored row per message, exactly one reply per burst, and the one agent run saw the whole burst.
Wazzup also echoes every bot send back to the webhook before answering the send call (the race the outbox's
pending-send marker covers): none of those echoes may be mistaken for a manager taking over.
"""

from __future__ import annotations

import asyncio
import random
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
    System,
    SystemConfig,
    chat_tag,
    check_logs_clean,
    letters,
    percentile,
    twilio_chat,
    wazzup_chat,
)

pytestmark = pytest.mark.system

DEBOUNCE = 3.0
QUESTIONS = (
    "Hello! I am looking for office chairs",
    "Do you also have standing desks?",
    "And how fast is delivery to Dubai Marina?",
)


def customers(count: int, twilio_share: int) -> list[tuple[str, Channel]]:
    chats = []
    for index in range(count):
        if index % twilio_share == 0:
            chats.append((twilio_chat(index), Channel.TWILIO))
        else:
            chats.append((wazzup_chat(index), Channel.WAZZUP))
    return chats


async def storm(
    system: System, chats: list[tuple[str, Channel]], *, copies: int, stagger: float, late: tuple[float, float]
) -> tuple[dict[str, list[Inbound]], list[Ack], list[Ack]]:
    """Each customer types its burst (a message every ~0.1 s, not waiting for answers); every message goes out
    `copies` times: two copies at once, the others seconds later."""
    rng = random.Random(7)
    bursts: dict[str, list[Inbound]] = {}
    late_tasks: list[asyncio.Task[Ack]] = []

    async def late_copy(message: Inbound, delay: float) -> Ack:
        await asyncio.sleep(delay)
        return await system.webhooks.deliver_until_acked(message)

    async def send(message: Inbound, delay: float) -> list[Ack]:
        await asyncio.sleep(delay)
        # Like a provider, a copy that got no answer (a connection reset under load) is delivered again.
        acks = await asyncio.gather(*(system.webhooks.deliver_until_acked(message) for _ in range(min(2, copies))))
        for _ in range(copies - 2):
            late_tasks.append(asyncio.create_task(late_copy(message, rng.uniform(*late))))
        return list(acks)

    async def customer(position: int, chat: str, channel: Channel) -> list[Ack]:
        await asyncio.sleep(position * stagger)
        tag = chat_tag(chat)
        burst = [Inbound(channel, chat, f"{text} ({tag}, part {letters(k, 1)})") for k, text in enumerate(QUESTIONS)]
        bursts[chat] = burst
        sent = await asyncio.gather(*(send(message, k * rng.uniform(0.05, 0.15)) for k, message in enumerate(burst)))
        return [ack for acks in sent for ack in acks]

    originals = await asyncio.gather(*(customer(i, chat, channel) for i, (chat, channel) in enumerate(chats)))
    late_acks = await asyncio.gather(*late_tasks)
    return bursts, [ack for acks in originals for ack in acks], list(late_acks)


async def run_storm(
    make_system: MakeSystem, reliability: dict[str, Any], *, customers_count: int, copies: int, stagger: float
) -> None:
    config = SystemConfig(debounce_seconds=DEBOUNCE, debounce_max_seconds=10, llm_model="storm-llm")
    async with make_system(config) as system:
        await system.start(workers=2)
        # Wazzup reports every API send back as an echo, before the send call returns.
        system.provider.wazzup_echo_url = f"{system.api.url}/webhooks/wazzup/{WAZZUP_SECRET}"
        chats = customers(customers_count, twilio_share=4)

        started = time.monotonic()
        bursts, originals, late_acks = await storm(system, chats, copies=copies, stagger=stagger, late=(2.0, 5.0))
        load_seconds = time.monotonic() - started
        settle_seconds = await system.settled(timeout=180)
        # Late echoes and delivery statuses drain; after that nothing may change any more.
        await asyncio.sleep(1.5)

        acks = originals + late_acks
        assert Counter(ack.status for ack in acks) == {200: len(chats) * len(QUESTIONS) * copies}
        retried = Counter(ack.error or str(ack.status) for ack in system.webhooks.acks if ack.status != 200)

        # Exactly one stored row per message.
        counts = await system.inbound_counts()
        message_of = {m.provider_message_id: m for burst in bursts.values() for m in burst}
        assert set(counts) == set(message_of)
        assert set(counts.values()) == {1}

        # Turns: the customer messages each turn consumed (one processed_at per turn and conversation).
        rows = await system.db.rows()
        turns: dict[tuple[int, object], list[Any]] = defaultdict(list)
        for row in rows:
            if row.direction is Direction.INBOUND:
                turns[(row.conversation_id, row.processed_at)].append(row)
        replies = {row.in_reply_to_id: row for row in rows if row.author is Author.BOT}
        assert len(replies) == len([row for row in rows if row.author is Author.BOT]), "two replies to one turn"
        assert not [row for row in rows if row.author is Author.MANAGER], "an own echo was taken for a manager"

        # Every turn has exactly one reply, sent, and the agent run behind it saw every message of the turn.
        chat_of = await system.db.chats()
        expected_sends: Counter[str] = Counter()
        for group in turns.values():
            last = max(group, key=lambda row: row.id)
            reply = replies[last.id]
            # Wazzup reported each send `delivered` (often before the send call had returned its id).
            wazzup = not chat_of[last.conversation_id].startswith("whatsapp:")
            assert reply.delivery_status is (DeliveryStatus.DELIVERED if wazzup else DeliveryStatus.SENT)
            assert reply.model == "storm-llm"
            expected_sends[chat_of[last.conversation_id]] += 1
            prompts = [call.prompt for call in system.llm.calls if last.text in call.prompt]
            assert all(row.text in prompts[-1] for row in group)
        by_chat = system.sent.refresh()
        assert {chat: len(by_chat.get(chat, [])) for chat, _ in chats} == dict(expected_sends)
        assert system.wazzup_api.repeats == 0
        conversations = await system.db.conversations()
        assert len(conversations) == len(chats)
        assert {c["owner"] for c in conversations} == {Owner.BOT}

        # A burst acknowledged within the silence window is one turn with one reply. (Whether a customer's messages
        # arrived within the window depends on the machine's load: the property is checked for every customer for
        # whom it did, and the count is reported.)
        one_burst = 0
        for chat, burst in bursts.items():
            own = [ack for ack in originals if ack.message.chat == chat]
            if max(a.acked_at for a in own) - min(a.sent_at for a in own) < DEBOUNCE:
                one_burst += 1
                assert expected_sends[chat] == 1, f"{chat}: a burst inside the window got {expected_sends[chat]}"
                assert len(burst) == len(QUESTIONS)

        # The processes' logs name chats by a hash: no phone number, no secret; the access log is on, the Wazzup
        # webhook secret in its request lines masked.
        numbers = [chat.removeprefix("whatsapp:+") for chat, _ in chats]
        log_lines = check_logs_clean(system, contacts=numbers)
        assert '"POST /webhooks/wazzup/*** HTTP/1.1" 200' in system.logs()

        latencies = [ack.acked_at - ack.sent_at for ack in acks]
        reliability.update(
            {
                "customers": len(chats),
                "webhook_requests": len(acks),
                "attempts_without_answer_redelivered": dict(retried),
                "stored_messages": len(counts),
                "bursts_inside_window": one_burst,
                "turns": len(turns),
                "replies_sent": sum(expected_sends.values()),
                "sends_at_providers": system.sent.total(),
                "duplicates_dropped_by_inbox": system.api.log_text().count("inbox.duplicate_dropped"),
                "own_echoes_recognised": system.provider.echoes_posted,
                "webhook_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
                "webhook_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "load_seconds": round(load_seconds, 1),
                "settled_after_load_seconds": round(settle_seconds, 1),
                "llm_requests": len(system.llm.calls),
                "log_lines_without_secrets_or_phone_numbers": log_lines,
            }
        )


async def test_duplicate_storm(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_storm(make_system, reliability, customers_count=200, copies=3, stagger=0.08)


@pytest.mark.soak
async def test_duplicate_storm_soak(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_storm(make_system, reliability, customers_count=1000, copies=5, stagger=0.03)
