"""Property test of the burst debounce scheduler (`salesbot.inbox.burst`) against the real Redis scripts.

Hypothesis plays random interleavings of customer messages (`signal_message`), turn attempts (`take_burst`) and
pauses of a few milliseconds, and checks after every step, against the Redis clock read around each call:

- a burst is never taken before it is due, due = min(last message + window, first message + cap), and a take
  that finds it due always succeeds (nothing is starved);
- a refused take reports exactly that due time and a wait no longer than the window;
- a successful take bumps the generation by one and starts a new burst; messages never change the generation;
- every message of one generation schedules the same job id, and only the first one enqueues it (one turn per
  burst, however many messages).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from arq.connections import ArqRedis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesbot import queues
from salesbot.devstack import EmbeddedRedis
from salesbot.inbox import burst
from salesbot.kit import redis_client
from salesbot.settings import ConversationSettings

WINDOW_MS = 40
CAP_MS = 100
SETTINGS = ConversationSettings(debounce_seconds=WINDOW_MS / 1000, debounce_max_seconds=CAP_MS / 1000)
_conversations = itertools.count(9_000_000)

step = st.one_of(
    st.just(("signal", 0)),
    st.just(("take", 0)),
    st.tuples(st.just("sleep"), st.sampled_from([1, 5, 15, 30, 45])),
)


@dataclass
class Model:
    generation: int = 0
    first: int | None = None
    last: int | None = None
    enqueued: int = 0

    def due(self) -> int | None:
        if self.first is None or self.last is None:
            return None
        return min(self.last + WINDOW_MS, self.first + CAP_MS)


async def now_ms(redis: ArqRedis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def play(url: str, steps: list[tuple[str, int]]) -> None:
    redis = await redis_client.connect(url)
    conversation = next(_conversations)
    model = Model()
    try:
        for kind, value in steps:
            if kind == "sleep":
                await asyncio.sleep(value / 1000)
                continue
            before = await now_ms(redis)
            if kind == "signal":
                enqueued = await burst.signal_message(redis, SETTINGS, conversation)
                after = await now_ms(redis)
                state = await redis.hgetall(f"sb:burst:{conversation}")
                first, last = int(state[b"first"]), int(state[b"last"])
                assert before <= last <= after
                assert first == (model.first if model.first is not None else last)
                assert int(state.get(b"gen", b"0")) == model.generation  # messages never move the generation
                # One job per generation: only the generation's first message enqueues it.
                assert enqueued is (model.enqueued == 0)
                model.enqueued += 1
                model.first, model.last = first, last
                assert await redis.zscore(queues.TURNS, f"turn:{conversation}:{model.generation}") is not None
            else:
                due = model.due()
                take = await burst.take_burst(redis, SETTINGS, conversation)
                after = await now_ms(redis)
                if take.taken:
                    assert due is None or after >= due, "taken before the burst was due"
                    model.generation += 1
                    assert take.generation == str(model.generation)
                    model.first = model.last = None
                    model.enqueued = 0
                else:
                    assert due is not None, "no burst pending, yet the take was refused"
                    assert before < due, "a due burst was not taken"
                    assert take.due_ms == due
                    assert 0 < take.wait_ms <= WINDOW_MS
                    assert take.generation == str(model.generation)
    finally:
        keys = [f"sb:burst:{conversation}"]
        keys += [f"arq:job:turn:{conversation}:{generation}" for generation in range(model.generation + 1)]
        await redis.delete(*keys)
        await redis.zrem(queues.TURNS, *[f"turn:{conversation}:{g}" for g in range(model.generation + 1)])
        await redis.aclose()


@given(steps=st.lists(step, min_size=1, max_size=14))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_debounce_invariants_hold_for_any_interleaving(
    redis_server: EmbeddedRedis, steps: list[tuple[str, int]]
) -> None:
    asyncio.run(play(redis_server.url, steps))
