"""Provider outage: Wazzup answers every send with 500 for a while, then rate-limits (429), then recovers, while
customers keep writing. Twilio chats, unaffected, are answered meanwhile.

All replies are delivered once, in order per chat: each reply waits (with backoff) behind the older ones of its
chat instead of overtaking them, and nothing is given up on during an outage of this length.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from salesbot.models import Channel
from tests.system.conftest import MakeSystem
from tests.system.harness import (
    Inbound,
    System,
    SystemConfig,
    chat_tag,
    check_every_turn_answered,
    letters,
    twilio_chat,
    wazzup_chat,
)

pytestmark = pytest.mark.system

OUTAGE = (500, {"error": "UNKNOWN_ERROR", "description": "internal error"})
RATE_LIMITED = (429, {"error": "TOO_MANY_REQUESTS", "description": "500 requests per 5 seconds"})
QUESTIONS = ("Do you sell projectors?", "For a meeting room of twenty people", "Do you install them too?")


def marker(chat: str, index: int) -> str:
    return f"{chat_tag(chat)} {letters(index, 2)}"


async def customer(system: System, chat: str, channel: Channel, bursts: int, gap: float) -> None:
    """One message per burst, `gap` seconds apart, each marked with its position."""
    for index in range(bursts):
        text = f"{QUESTIONS[index % len(QUESTIONS)]} ({marker(chat, index)})"
        ack = await system.webhooks.deliver_until_acked(Inbound(channel, chat, text), timeout=60)
        assert ack.status == 200
        await asyncio.sleep(gap)


def answered_up_to(reply: str, chat: str, bursts: int) -> int:
    """The latest burst a reply answers (the fake LLM quotes the customer messages of the turn)."""
    return max(index for index in range(bursts) if marker(chat, index) in reply)


async def run_provider_outage(
    make_system: MakeSystem,
    reliability: dict[str, Any],
    *,
    wazzup_customers: int,
    twilio_customers: int,
    bursts: int,
    outage_seconds: float,
    rate_limit_seconds: float,
) -> None:
    config = SystemConfig(
        debounce_seconds=0.4,
        debounce_max_seconds=2,
        llm_model="outage-llm",
        retry_base_seconds=0.3,
        # Backoff long enough that OUTBOX_MAX_SEND_ATTEMPTS outlasts the outage (a longer one is given up on and
        # shown to managers as failed, by design).
        retry_max_seconds=max(2.0, (outage_seconds + rate_limit_seconds) / 10),
        max_send_attempts=20,
    )
    async with make_system(config) as system:
        system.llm.echo_prompt = True  # replies quote what they answer: the order is visible at the provider
        await system.start(workers=1)
        chats = [(wazzup_chat(i), Channel.WAZZUP) for i in range(wazzup_customers)]
        chats += [(twilio_chat(i), Channel.TWILIO) for i in range(twilio_customers)]

        system.wazzup_api.outage = OUTAGE
        outage_started = time.monotonic()
        load = asyncio.gather(
            *(customer(system, chat, channel, bursts, gap=outage_seconds / bursts) for chat, channel in chats)
        )
        await asyncio.sleep(outage_seconds)
        system.wazzup_api.outage = RATE_LIMITED
        await asyncio.sleep(rate_limit_seconds)
        system.wazzup_api.outage = None
        recovered_at = time.time()
        await load
        # Twilio was never down: its customers were answered during the Wazzup outage.
        by_chat = system.sent.refresh()
        twilio_early = [chat for chat, ch in chats if ch is Channel.TWILIO and by_chat[chat][0].at < recovered_at]
        await system.settled(timeout=120)
        await asyncio.sleep(1)

        check = await check_every_turn_answered(system)
        by_chat = system.sent.refresh()
        for chat, _ in chats:
            # In order: each reply answers a later burst than the reply before it.
            positions = [answered_up_to(sent.text or "", chat, bursts) for sent in by_chat[chat]]
            assert positions == sorted(set(positions)), (chat, [sent.text for sent in by_chat[chat]])
            assert positions[-1] == bursts - 1
        drained = [sent.at - recovered_at for chat, ch in chats if ch is Channel.WAZZUP for sent in by_chat[chat]]
        reliability.update(
            {
                "wazzup_customers": wazzup_customers,
                "twilio_customers": twilio_customers,
                "outage_seconds": round(time.monotonic() - outage_started, 1),
                "send_attempts_refused_during_outage": system.wazzup_api.outage_answers,
                "replies_delivered": check.sends,
                "turns": check.turns,
                "twilio_chats_answered_during_outage": len(twilio_early),
                "backlog_drained_seconds_after_recovery": round(max(drained), 1),
            }
        )


async def test_provider_outage(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_provider_outage(
        make_system,
        reliability,
        wazzup_customers=30,
        twilio_customers=10,
        bursts=3,
        outage_seconds=6.0,
        rate_limit_seconds=3.0,
    )


@pytest.mark.soak
async def test_provider_outage_soak(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_provider_outage(
        make_system,
        reliability,
        wazzup_customers=200,
        twilio_customers=50,
        bursts=6,
        outage_seconds=60.0,
        rate_limit_seconds=20.0,
    )
