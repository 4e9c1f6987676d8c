"""LLM outage: the OpenAI-compatible LLM behind LLM_BASE_URL fails in different ways for a while (500, 429,
timeouts, a 200 that is not a completion), then recovers. Customers keep writing throughout.

Every turn is answered (by the fallback model, else the offline responder) and each reply records the model
that produced it; when the LLM is back, the primary model answers again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from salesbot.models import Author, Channel, DeliveryStatus
from tests.system.conftest import MakeSystem
from tests.system.harness import Inbound, SystemConfig, chat_tag, check_every_turn_answered, percentile, wazzup_chat

pytestmark = pytest.mark.system

PRIMARY, SECONDARY, OFFLINE = "primary-llm", "secondary-llm", "offline"
TIMEOUT_SECONDS = 1.5

# (phase, behaviour of the primary and of the fallback LLM, the model expected to answer)
PHASES = [
    ("healthy", {PRIMARY: "ok", SECONDARY: "ok"}, PRIMARY),
    ("primary 500", {PRIMARY: "500", SECONDARY: "ok"}, SECONDARY),
    ("primary 429", {PRIMARY: "429", SECONDARY: "ok"}, SECONDARY),
    ("primary times out", {PRIMARY: "timeout", SECONDARY: "ok"}, SECONDARY),
    ("primary garbage, fallback 500", {PRIMARY: "garbage", SECONDARY: "500"}, OFFLINE),
    ("both rate-limited", {PRIMARY: "429", SECONDARY: "429"}, OFFLINE),
    ("both time out", {PRIMARY: "timeout", SECONDARY: "timeout"}, OFFLINE),
    ("recovered", {PRIMARY: "ok", SECONDARY: "ok"}, PRIMARY),
]


async def run_llm_outage(make_system: MakeSystem, reliability: dict[str, Any], *, per_phase: int) -> None:
    config = SystemConfig(
        debounce_seconds=0.5,
        debounce_max_seconds=3,
        llm_model=PRIMARY,
        llm_fallbacks=(SECONDARY,),
        llm_timeout_seconds=TIMEOUT_SECONDS,
    )
    async with make_system(config) as system:
        await system.start(workers=1)
        report: dict[str, Any] = {}
        expected_model: dict[str, str] = {}
        index = 0
        for phase, behaviours, answering in PHASES:
            system.llm.behaviours = dict(behaviours)
            chats = [wazzup_chat(index + k) for k in range(per_phase)]
            index += per_phase
            started = time.time()
            messages = [Inbound(Channel.WAZZUP, chat, f"Any ergonomic chairs? {chat_tag(chat)}") for chat in chats]
            acks = await asyncio.gather(*(system.webhooks.deliver(message) for message in messages))
            assert {ack.status for ack in acks} == {200}
            await system.replies_reached(dict.fromkeys(chats, 1), timeout=120)
            by_chat = system.sent.refresh()
            waits = [by_chat[chat][0].at - ack.acked_at for chat, ack in zip(chats, acks, strict=True)]
            for chat in chats:
                expected_model[chat] = answering
            report[phase] = {
                "answered_by": answering,
                "reply_p50_seconds": round(percentile(waits, 0.5), 2),
                "reply_max_seconds": round(max(waits), 2),
                "llm_requests": len([c for c in system.llm.calls if c.at >= started]),
            }
        await system.settled(timeout=60)

        await check_every_turn_answered(system)
        rows = await system.db.rows()
        chat_of = await system.db.chats()
        replies = [row for row in rows if row.author in (Author.BOT, Author.SYSTEM)]
        assert len(replies) == len(expected_model)
        models = {chat_of[row.conversation_id]: (row.model, row.fallback_used) for row in replies}
        for chat, answering in expected_model.items():
            assert models[chat] == (answering, answering != PRIMARY), chat
        assert all(row.author is Author.BOT for row in replies), "an outage turned into a handoff"
        assert {row.delivery_status for row in replies} == {DeliveryStatus.SENT}
        reliability.update({"customers_per_phase": per_phase, "phases": report})


async def test_llm_outage(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_llm_outage(make_system, reliability, per_phase=12)


@pytest.mark.soak
async def test_llm_outage_soak(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    await run_llm_outage(make_system, reliability, per_phase=100)
