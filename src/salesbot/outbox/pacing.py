"""Pacing per recipient: the parts of a reply, and replies to one chat, leave at least `OUTBOX_PACING_SECONDS`
apart (a recipient's next free slot lives in Redis, timed by Redis's own clock). Without Redis, no pacing."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.kit.hashing import short_hash

_PACE_WAIT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ready = tonumber(redis.call('GET', KEYS[1]) or '0')
if ready > now then return ready - now end
return 0
"""

_PACE_MARK = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], string.format('%d', now + tonumber(ARGV[1])), 'PX', tonumber(ARGV[1]) + 60000)
return 0
"""


def key(channel: str, chat_id: str) -> str:
    return f"sb:outbox:pace:{channel}:{short_hash(chat_id)}"


async def remaining(redis: Redis, key: str, seconds: float) -> float:
    """Seconds until the recipient's next slot (0: it may be sent to now)."""
    if seconds <= 0:
        return 0.0
    try:
        wait_ms = int(await redis.eval(_PACE_WAIT, 1, key))  # type: ignore[misc]
    except RedisError:
        return 0.0
    return max(wait_ms, 0) / 1000


async def mark(redis: Redis, key: str, seconds: float) -> None:
    if seconds <= 0:
        return
    try:
        await redis.eval(_PACE_MARK, 1, key, str(int(seconds * 1000)))  # type: ignore[misc]
    except RedisError:
        return
