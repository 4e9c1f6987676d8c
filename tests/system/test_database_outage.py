"""PostgreSQL outage under the product's default settings: the database is stopped while customers write on
Twilio and Wazzup, then started again.

Twilio does not redeliver a webhook answered with a 5xx, so each Twilio message is delivered exactly once here,
as Twilio would: it must get its 200 and be answered. Some Wazzup webhooks arrive twice (a redelivery). Every
message must be stored once and answered once after the database is back (a turn may answer several messages of
a customer together, as it does for any burst).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from redis.asyncio import Redis

from salesbot.inbox import spool
from salesbot.models import Channel
from salesbot.settings import ConversationSettings, LLMSettings, OutboxSettings, Settings
from tests.system.conftest import MakeSystem
from tests.system.harness import (
    Ack,
    Inbound,
    System,
    SystemConfig,
    check_every_turn_answered,
    eventually,
    percentile,
    twilio_chat,
    wazzup_chat,
)

pytestmark = pytest.mark.system

# Customers who wrote before the outage (their conversations exist) and customers new during it.
KNOWN, NEW = 8, 4
OUTAGE_HOLD_SECONDS = 6.0  # the database stays down after the last webhook: the worker's drains find it down


def default_config() -> SystemConfig:
    """The product's defaults for every timing the harness passes to the processes."""
    conversation, outbox, llm = ConversationSettings(), OutboxSettings(), LLMSettings()
    return SystemConfig(
        debounce_seconds=conversation.debounce_seconds,
        debounce_max_seconds=conversation.debounce_max_seconds,
        job_timeout_seconds=Settings.model_fields["worker_job_timeout_seconds"].default,
        llm_timeout_seconds=llm.request_timeout_seconds,
        retry_base_seconds=outbox.retry_base_seconds,
        retry_max_seconds=outbox.retry_max_seconds,
        max_send_attempts=outbox.max_send_attempts,
        extra_env={"OUTBOX_PACING_SECONDS": str(outbox.pacing_seconds)},
    )


def chats() -> list[tuple[str, Channel]]:
    return [
        (twilio_chat(i), Channel.TWILIO) if i % 2 == 0 else (wazzup_chat(i), Channel.WAZZUP) for i in range(KNOWN + NEW)
    ]


async def spool_length(system: System) -> int:
    client = Redis(unix_socket_path=str(system.services.redis.socket_path))
    try:
        return int(await client.xlen(spool.STREAM_KEY))
    finally:
        await client.aclose()


async def write_during_outage(system: System, chat: str, channel: Channel, index: int) -> list[Ack]:
    """Two messages a second apart; Wazzup delivers every other customer's first message twice."""
    acks = []
    for number in range(2):
        message = Inbound(channel, chat, f"Question {number + 1} while the database is down (customer {index})")
        acks.append(await system.webhooks.deliver(message))
        if channel is Channel.WAZZUP and number == 0 and index % 4 == 1:
            acks.append(await system.webhooks.deliver(message))
        await asyncio.sleep(1.0)
    return acks


async def test_messages_during_a_database_outage_are_stored_once_and_answered_once(
    make_system: MakeSystem, reliability: dict[str, Any]
) -> None:
    async with make_system(default_config()) as system:
        await system.start(workers=1)
        everyone = chats()
        known = everyone[:KNOWN]
        before = [Inbound(channel, chat, "Hello, do you sell office chairs?") for chat, channel in known]
        assert {ack.status for ack in await asyncio.gather(*map(system.webhooks.deliver, before))} == {200}
        await system.replies_reached({chat: 1 for chat, _ in known}, timeout=120)
        await system.settled(timeout=120)

        stop_started = time.monotonic()
        await asyncio.to_thread(system.services.postgres.stop)
        stopped = time.monotonic()
        try:
            results = await asyncio.gather(
                *(write_during_outage(system, chat, channel, index) for index, (chat, channel) in enumerate(everyone))
            )
            during = [ack for acks in results for ack in acks]
            await asyncio.sleep(OUTAGE_HOLD_SECONDS)
            spooled = await spool_length(system)
        finally:
            await asyncio.to_thread(system.services.postgres.start)
        back = time.monotonic()

        # Nothing was refused: a 503 here is a lost Twilio message.
        assert Counter(ack.status for ack in during) == {200: len(during)}
        assert spooled == len(during)
        drained_after = await eventually(lambda: _empty(system), what="the spool drained", timeout=120, every=0.1)
        settled_after = await system.settled(timeout=180)
        await asyncio.sleep(2)

        distinct = {ack.message.provider_message_id for ack in during}
        check = await check_every_turn_answered(
            system, expect_ids={message.provider_message_id for message in before} | distinct
        )
        logs = system.logs()
        latencies = [(ack.acked_at - ack.sent_at) * 1000 for ack in during]
        reliability.update(
            {
                "settings": "product defaults (debounce 3 s / 15 s, job timeout 45 s, outbox pacing 1 s)",
                "customers": len(everyone),
                "twilio_webhooks_during_outage": sum(ack.message.channel is Channel.TWILIO for ack in during),
                "wazzup_webhooks_during_outage": sum(ack.message.channel is Channel.WAZZUP for ack in during),
                "wazzup_redeliveries": len(during) - len(distinct),
                "answers_during_outage": dict(Counter(ack.status for ack in during)),
                "ack_latency_during_outage_ms_p50": round(percentile(latencies, 0.5), 1),
                "ack_latency_during_outage_ms_max": round(max(latencies), 1),
                "database_stop_seconds": round(stopped - stop_started, 1),
                "database_down_seconds": round(back - stopped, 1),
                "spooled_entries": spooled,
                "spool_drained_seconds_after_database_start": round(drained_after, 1),
                "all_answered_seconds_after_database_start": round(time.monotonic() - back, 1),
                "settle_wait_seconds": round(settled_after, 1),
                "drains_that_found_the_database_down": logs.count("inbox.spool_drain_paused"),
                "customer_messages_stored": check.customer_messages,
                "turns": check.turns,
                "replies_sent": check.sends,
                "process_restarts": [kind for kind, _ in system.supervisor.restarts],
            }
        )


async def _empty(system: System) -> bool:
    return await spool_length(system) == 0
