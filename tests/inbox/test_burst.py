"""Debounce timing in Redis and the per-chat lock, against the real Redis."""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis

from salesbot import queues
from salesbot.inbox.burst import signal_message, take_burst
from salesbot.kit.redis_lock import FlaggingLock
from salesbot.settings import ConversationSettings


async def queued(redis: ArqRedis) -> list[str]:
    return [job_id.decode() for job_id in await redis.zrange(queues.TURNS, 0, -1)]


async def test_a_burst_coalesces_into_one_job_and_a_new_generation_after_the_take(redis: ArqRedis) -> None:
    settings = ConversationSettings(debounce_seconds=0.3, debounce_max_seconds=5)
    assert await signal_message(redis, settings, 7) is True
    assert await signal_message(redis, settings, 7) is False  # same burst, same job
    assert await queued(redis) == ["turn:7:0"]

    early = await take_burst(redis, settings, 7)
    assert not early.taken
    assert 0 < early.wait_ms <= 300

    await asyncio.sleep(0.35)
    taken = await take_burst(redis, settings, 7)
    assert taken.taken
    assert taken.generation == "1"
    # A message after the take belongs to the next generation: a new job, not the running one's id.
    assert await signal_message(redis, settings, 7) is True
    assert sorted(await queued(redis)) == ["turn:7:0", "turn:7:1"]


async def test_the_cap_bounds_the_wait_from_the_first_message(redis: ArqRedis) -> None:
    settings = ConversationSettings(debounce_seconds=0.4, debounce_max_seconds=0.5)
    await signal_message(redis, settings, 8)
    await asyncio.sleep(0.3)
    await signal_message(redis, settings, 8)  # would move the window to 0.7 s, the cap keeps it at 0.5 s
    result = await take_burst(redis, settings, 8)
    assert not result.taken
    assert result.wait_ms <= 200


async def test_take_without_state_proceeds(redis: ArqRedis) -> None:
    # Redis lost the burst (or a sweep scheduled the turn): the turn runs and reads PostgreSQL.
    assert (await take_burst(redis, ConversationSettings(), 9)).taken


async def test_lock_flags_a_rerun_for_the_holder(redis: ArqRedis) -> None:
    holder = FlaggingLock(redis, "sb:test:lock", 5000)
    other = FlaggingLock(redis, "sb:test:lock", 5000)
    assert (await holder.acquire()).ok
    busy = await other.acquire()
    assert not busy.ok
    assert 0 < busy.busy_for_ms <= 5000
    assert await holder.release() is True  # someone asked for another run meanwhile
    assert (await other.acquire()).ok
    assert await other.release() is False
    assert await redis.get("sb:test:lock") is None
