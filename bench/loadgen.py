"""Shared by bench_load.py and bench_memory.py: the real processes and an open-loop stream of new conversations.

A conversation is a new customer who writes two messages a moment apart (one burst) and gets one reply.
Arrivals are Poisson at the offered rate. The second message carries a detail of its own (a team size), so
customers' texts differ as real ones do: what the worker computes per text (its embedding for a search, its
language) is not served from a cache for every conversation but the first. Its reply overhead is the bot's own
time: from the end of the debounce window after the customer's last message (webhook acknowledged +
DEBOUNCE_SECONDS) to the reply's send call at the fake provider, minus the LLM's own time when the fake LLM is
given a latency (`llm_seconds` per turn).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fakes and the process harness live in the test suite

from tests.system.harness import Inbound, System, percentile, wazzup_chat  # noqa: E402

from salesbot.models import Channel  # noqa: E402

GREETINGS = ("Hello!", "Hi there", "Good morning", "Salam", "Здравствуйте")
QUESTIONS = (
    "Do you have laser printers for a small office?",
    "How much is delivery to Abu Dhabi?",
    "I need ten monitors, what do you recommend?",
    "Can I pay by bank transfer?",
    "Do you sell ergonomic chairs?",
)
DETAILS = ("We are a team of {n}.", "It is for {n} people.", "Our office has {n} staff.")


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


@dataclass
class StepResult:
    offered_per_minute: float
    seconds: float
    started: int = 0
    answered: int = 0
    unanswered: int = 0
    webhook_errors: int = 0
    overheads: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "offered_conversations_per_minute": self.offered_per_minute,
            "seconds": round(self.seconds, 1),
            "conversations_started": self.started,
            "conversations_answered": self.answered,
            "answered_per_minute": round(self.answered * 60 / self.seconds, 1),
            "unanswered_after_grace": self.unanswered,
            "webhook_errors": self.webhook_errors,
            "reply_overhead_p50_ms": round(percentile(self.overheads, 0.5) * 1000, 1),
            "reply_overhead_p95_ms": round(percentile(self.overheads, 0.95) * 1000, 1),
            "reply_overhead_max_ms": round(max(self.overheads, default=0.0) * 1000, 1),
        }


class Conversations:
    """Runs conversations against a started `System`; chat numbers never repeat across steps."""

    def __init__(self, system: System, debounce_seconds: float, *, seed: int = 1, llm_seconds: float = 0.0) -> None:
        self.system = system
        self.debounce = debounce_seconds
        # The fake LLM's own time per turn (its latency x the turn's requests): not the bot's overhead.
        self.llm_seconds = llm_seconds
        self.rng = random.Random(seed)
        self.next_chat = 0

    async def one(self, result: StepResult, grace_deadline: list[float]) -> None:
        self.next_chat += 1
        chat = wazzup_chat(2_000_000 + self.next_chat)
        result.started += 1
        first = Inbound(Channel.WAZZUP, chat, self.rng.choice(GREETINGS))
        detail = self.rng.choice(DETAILS).format(n=self.rng.randint(2, 500))
        second = Inbound(Channel.WAZZUP, chat, f"{self.rng.choice(QUESTIONS)} {detail}")
        ack1 = await self.system.webhooks.deliver(first)
        await asyncio.sleep(self.rng.uniform(0.1, 0.4))
        ack2 = await self.system.webhooks.deliver(second)
        if ack1.status != 200 or ack2.status != 200:
            result.webhook_errors += 1
            return
        while True:
            sent = self.system.sent.refresh().get(chat)
            if sent:
                result.answered += 1
                result.overheads.append(sent[0].at - (ack2.acked_at + self.debounce) - self.llm_seconds)
                return
            if time.monotonic() > grace_deadline[0]:
                result.unanswered += 1
                return
            await asyncio.sleep(0.05)

    async def step(self, per_minute: float, seconds: float, *, grace: float = 30.0) -> StepResult:
        """Offer `per_minute` new conversations for `seconds`, then wait up to `grace` for their replies."""
        result = StepResult(offered_per_minute=per_minute, seconds=seconds)
        deadline = [float("inf")]
        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        end = started + seconds
        while True:
            await asyncio.sleep(self.rng.expovariate(per_minute / 60))
            if time.monotonic() >= end:
                break
            tasks.append(asyncio.create_task(self.one(result, deadline)))
        deadline[0] = time.monotonic() + grace
        await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - started
        return result
