"""A deploy stops the worker with SIGTERM while the model is thinking (default WORKER_SHUTDOWN_GRACE_SECONDS).

Before draining, arq cancelled the running turn on the signal: the customer waited for the next worker to re-run it,
and the cancelled start counted towards the turn's crash budget (a chat that met a few deploys was handed to a
manager). Now the worker stops taking jobs, lets the turn finish and its reply go out, then exits; a second signal
stops it at once, and the next worker answers.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from salesbot.models import Channel, Direction, Message
from tests.system.conftest import MakeSystem
from tests.system.harness import Ack, Inbound, System, SystemConfig, chat_tag, eventually, wazzup_chat

pytestmark = pytest.mark.system

LLM_SECONDS = 4.0


async def send_and_wait_for_the_model(system: System, chat: str, text: str) -> Ack:
    message = Inbound(Channel.WAZZUP, chat, f"{text} ({chat_tag(chat)})")
    ack = await system.webhooks.deliver(message)
    assert ack.status == 200

    async def thinking() -> bool:
        return any(chat_tag(chat) in call.context for call in list(system.llm.calls))

    await eventually(thinking, what="the model reading the message", timeout=60, every=0.05)
    return ack


async def stop_worker(system: System, *, signals: int) -> tuple[int | None, float]:
    """SIGTERM the worker `signals` times and wait for it to exit (off the event loop: the fakes answer meanwhile).
    A second signal is sent once this start's worker handled the first: pending signals of one kind coalesce into one
    (the log file also holds earlier starts' lines, whose `worker.draining` would let it go too early)."""
    worker = system.workers[0]
    process = worker.process
    assert process is not None
    worker.wanted = False  # the harness's supervisor must not restart it
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    if signals > 1:

        async def draining() -> bool:
            return "worker.draining" in worker.current_log()

        await eventually(draining, what="the worker draining", timeout=30, every=0.05)
        process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait, 60)
    worker.process = None
    return code, time.monotonic() - started


async def max_turn_attempts(system: System) -> int:
    query = select(func.max(Message.turn_attempts)).where(Message.direction == Direction.INBOUND)
    return int(await system.db.scalar(query) or 0)


async def test_sigterm_lets_the_running_turn_answer_and_a_second_signal_stops_at_once(
    make_system: MakeSystem, reliability: dict[str, Any]
) -> None:
    async with make_system(SystemConfig(llm_model="slow-llm")) as system:
        system.llm.latency = LLM_SECONDS
        await system.start(workers=1)

        drained = wazzup_chat(700)
        await send_and_wait_for_the_model(system, drained, "Do you have ergonomic chairs?")
        code, drain_seconds = await stop_worker(system, signals=1)
        # The reply went out before the process exited, from the turn that was running: nothing re-ran it.
        assert code == 0, system.workers[0].log_tail()
        assert system.sent.refresh().get(drained, []) != [], "the drained turn's reply was not sent before the exit"
        assert system.sent.count(drained) == 1
        assert await max_turn_attempts(system) == 1
        assert "worker.drained" in system.workers[0].log_text()
        # `salesbot worker` runs on uvloop, as uvicorn runs the API (uvicorn[standard] installs it here).
        assert "event_loop=uvloop" in system.workers[0].log_text()

        system.workers[0].start()
        await system.workers[0].ready()
        hurried = wazzup_chat(701)
        await send_and_wait_for_the_model(system, hurried, "Do you have standing desks?")
        code, hurried_seconds = await stop_worker(system, signals=2)
        assert code == 0, system.workers[0].log_tail()
        # Cancelled, not finished: the model had not answered yet, so nothing was sent.
        assert system.sent.count(hurried) == 0

        system.workers[0].start()
        await system.workers[0].ready()
        await system.replies_reached({drained: 1, hurried: 1}, timeout=120)
        await system.settled(timeout=120)
        assert system.sent.count(hurried) == 1
        reliability.update(
            {
                "llm_seconds_per_request": LLM_SECONDS,
                "sigterm_to_exit_seconds_draining": round(drain_seconds, 1),
                "two_signals_to_exit_seconds": round(hurried_seconds, 1),
            }
        )
