"""Burst debouncing: per-conversation timing state in Redis and the scheduling of the conversation's turn.

The messages themselves are already in PostgreSQL (unprocessed inbound rows) when the inbox signals a burst, so
Redis only holds *when* to answer: `first` (start of the burst), `last` (latest message) and `gen`, a generation
counter. A turn is due at `min(last + DEBOUNCE_SECONDS, first + DEBOUNCE_MAX_SECONDS)`. Every message enqueues
the job `turn:{conversation}:{gen}` deferred to that moment; arq refuses a second job with the same id, so a
burst coalesces into one job. A job that wakes before the (moved) due time re-enqueues itself for the new due
time. When a turn takes the burst it bumps `gen` and clears the timing, so messages arriving during the turn
start a new generation (a new job) instead of being stranded on the running job's id. Times come from the
Redis server clock, so API and worker clocks cannot disagree.

Losing this state loses no message: a cron sweeps conversations whose inbound rows stay unprocessed and
schedules their turns.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix

from salesbot import queues
from salesbot.settings import ConversationSettings

TURN_JOB = "run_turn"
STATE_TTL_MS = 24 * 3600 * 1000

# Milliseconds on the Redis server's clock (scripts that read TIME must replicate effects on Redis < 7).
_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_TOUCH = (
    _NOW
    + """
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
if not first then
  first = now
  redis.call('HSET', KEYS[1], 'first', string.format('%d', now))
end
redis.call('HSET', KEYS[1], 'last', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local gen = redis.call('HGET', KEYS[1], 'gen') or '0'
local due = math.min(now + tonumber(ARGV[1]), first + tonumber(ARGV[2]))
-- Whether the generation's job already exists (arq's job or result key): then nobody needs to enqueue it.
local job = ARGV[6] .. gen
local known = redis.call('EXISTS', ARGV[4] .. job, ARGV[5] .. job)
return {gen, string.format('%d', due - now), string.format('%d', due), known}
"""
)

_TAKE = (
    _NOW
    + """
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
if first and last then
  local due = math.min(last + tonumber(ARGV[1]), first + tonumber(ARGV[2]))
  if now < due then
    return {0, string.format('%d', due - now), string.format('%d', due), redis.call('HGET', KEYS[1], 'gen') or '0'}
  end
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HDEL', KEYS[1], 'first', 'last')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, '0', '0', tostring(gen)}
"""
)


def _key(conversation_id: int) -> str:
    return f"sb:burst:{conversation_id}"


def _window_ms(settings: ConversationSettings) -> tuple[int, int]:
    return int(settings.debounce_seconds * 1000), int(settings.debounce_max_seconds * 1000)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def signal_message(redis: ArqRedis, settings: ConversationSettings, conversation_id: int) -> bool:
    """A customer message was stored: extend the burst window and make sure the turn is scheduled.

    Returns True when this call enqueued the job (False: the burst's job already exists and will see the new
    timing when it wakes).
    """
    return conversation_id in await signal_messages(redis, settings, [conversation_id])


async def signal_messages(redis: ArqRedis, settings: ConversationSettings, conversation_ids: Sequence[int]) -> set[int]:
    """`signal_message` for several conversations in one round trip plus one enqueue per burst that starts.

    Returns the conversations whose job this call enqueued. A job that already exists (queued, running or with a
    kept result) is not enqueued again: `enqueue_job` would refuse it anyway, after three round trips.
    """
    if not conversation_ids:
        return set()
    window, cap = _window_ms(settings)
    async with redis.pipeline(transaction=False) as pipe:
        for conversation_id in conversation_ids:
            pipe.eval(
                _TOUCH,
                1,
                _key(conversation_id),
                str(window),
                str(cap),
                str(STATE_TTL_MS),
                job_key_prefix,
                result_key_prefix,
                f"turn:{conversation_id}:",
            )
        touched = await pipe.execute()
    missing = [
        (conversation_id, f"turn:{conversation_id}:{_text(gen)}", int(_text(delay_ms)))
        for conversation_id, (gen, delay_ms, _due, known) in zip(conversation_ids, touched, strict=True)
        if not int(known)
    ]
    enqueued = await asyncio.gather(
        *(
            redis.enqueue_job(
                TURN_JOB,
                conversation_id,
                _job_id=job_id,
                _queue_name=queues.TURNS,
                _defer_by=timedelta(milliseconds=delay_ms),
            )
            for conversation_id, job_id, delay_ms in missing
        ),
        return_exceptions=True,
    )
    for outcome in enqueued:
        if isinstance(outcome, BaseException):
            raise outcome
    return {conversation_id for (conversation_id, _job_id, _delay), job in zip(missing, enqueued, strict=True) if job}


@dataclass(frozen=True)
class Take:
    taken: bool
    # When not taken: how long until the burst is due, and the due time (Redis clock, ms) for the job id.
    wait_ms: int = 0
    due_ms: int = 0
    generation: str = "0"


async def take_burst(redis: ArqRedis, settings: ConversationSettings, conversation_id: int) -> Take:
    """Close the burst if its silence window has passed (bumping the generation); else report the wait."""
    window, cap = _window_ms(settings)
    taken, wait_ms, due_ms, gen = await redis.eval(
        _TAKE, 1, _key(conversation_id), str(window), str(cap), str(STATE_TTL_MS)
    )  # type: ignore[misc]
    return Take(taken=bool(int(taken)), wait_ms=int(_text(wait_ms)), due_ms=int(_text(due_ms)), generation=_text(gen))


async def schedule_turn_at(
    redis: ArqRedis, conversation_id: int, *, generation: str, due_ms: int, wait_ms: int
) -> None:
    """Re-schedule a turn whose burst is not due yet (the id includes the due time, so equal wake-ups coalesce)."""
    await redis.enqueue_job(
        TURN_JOB,
        conversation_id,
        _job_id=f"turn:{conversation_id}:{generation}:{due_ms}",
        _queue_name=queues.TURNS,
        _defer_by=timedelta(milliseconds=wait_ms),
    )


async def schedule_turn_now(
    redis: ArqRedis, conversation_id: int, *, defer_ms: int = 0, job_suffix: str | None = None
) -> None:
    """An extra run (lock released with work pending, a dead lock holder, the recovery sweep).

    Harmless when nothing is left to do. `job_suffix` coalesces equal requests; None makes the job unique.
    """
    await redis.enqueue_job(
        TURN_JOB,
        conversation_id,
        _job_id=f"turn:{conversation_id}:{job_suffix or uuid.uuid4().hex}",
        _queue_name=queues.TURNS,
        _defer_by=timedelta(milliseconds=defer_ms) if defer_ms else None,
    )
