"""API restart during load: customers keep writing while the API process is SIGKILLed (and later stopped
gracefully with SIGTERM) and started again. Webhooks that got no answer are delivered again, as providers do.

Every webhook that got a 200 is answered; a message the dying API had stored but never acknowledged comes back
as a redelivery and is not stored or answered twice.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from typing import Any

import pytest

from salesbot.models import Channel
from tests.system.conftest import MakeSystem
from tests.system.harness import (
    System,
    SystemConfig,
    check_every_turn_answered,
    twilio_chat,
    wazzup_chat,
    write_as_customer,
)

pytestmark = pytest.mark.system

QUESTIONS = (
    "Hello, do you sell laser printers?",
    "I need one for a small office",
    "What about toner cartridges?",
    "Do you deliver to Sharjah?",
    "Can I pay by bank transfer?",
    "Is there a warranty?",
)


async def restarts(system: System, plan: list[tuple[float, signal.Signals]]) -> list[dict[str, Any]]:
    """After each planned pause, stop the API (SIGKILL: no goodbye; SIGTERM: uvicorn's graceful shutdown) and
    start it again at once; returns how long each time the API did not answer."""
    done = []
    for pause, sig in plan:
        await asyncio.sleep(pause)
        down = time.monotonic()
        system.api.signal(sig)
        system.api.start()
        ready = await system.api.ready()
        downtime = round(time.monotonic() - down, 1)
        done.append({"signal": sig.name, "downtime_seconds": downtime, "boot_seconds": round(ready, 1)})
    return done


async def run_api_restart(
    make_system: MakeSystem,
    reliability: dict[str, Any],
    *,
    customers_count: int,
    messages: int,
    plan: list[tuple[float, signal.Signals]],
) -> None:
    config = SystemConfig(debounce_seconds=0.5, debounce_max_seconds=3)
    async with make_system(config) as system:
        await system.start(workers=1)
        rng = random.Random(5)
        chats = [
            (twilio_chat(i), Channel.TWILIO) if i % 3 == 0 else (wazzup_chat(i), Channel.WAZZUP)
            for i in range(customers_count)
        ]
        load = asyncio.gather(
            *(write_as_customer(system, chat, channel, QUESTIONS, messages, rng) for chat, channel in chats)
        )
        outages = await restarts(system, plan)
        results = await load
        acks = [ack for acks in results for ack in acks]
        await system.settled(timeout=120)
        await asyncio.sleep(2)

        acked = {ack.message.provider_message_id for ack in acks if ack.status == 200}
        written = {ack.message.provider_message_id for ack in acks}
        assert acked == written, "a message was never acknowledged despite redelivery"
        check = await check_every_turn_answered(system, expect_ids=acked)
        assert await system.db.unfinished() == (0, 0)
        statuses = Counter(ack.status for ack in acks)
        reliability.update(
            {
                "customers": len(chats),
                "messages": len(written),
                "webhook_attempts": len(acks),
                "unanswered_attempts": sum(n for status, n in statuses.items() if status != 200),
                "attempt_statuses": dict(statuses),
                "redelivered_duplicates_dropped": system.api.log_text().count("inbox.duplicate_dropped"),
                "turns": check.turns,
                "replies_sent": check.sends,
                "api_outages": outages,
            }
        )


async def test_api_restart_during_load(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_api_restart(
        make_system,
        reliability,
        customers_count=100,
        messages=6,
        plan=[(2.5, signal.SIGKILL), (3.0, signal.SIGTERM)],
    )


@pytest.mark.soak
async def test_api_restart_during_load_soak(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    plan = [(4.0, signal.SIGKILL if i % 2 == 0 else signal.SIGTERM) for i in range(8)]
    await run_api_restart(make_system, reliability, customers_count=300, messages=30, plan=plan)
