"""A token bucket in Redis: a rate shared by every process (API and workers) that sends on behalf of one key.

`take()` either takes a token and returns 0, or takes nothing and returns how many seconds until one is free.
The bucket refills continuously at `rate` tokens per second up to `capacity` (the burst), on Redis' own clock,
so processes on different machines agree.
"""

from __future__ import annotations

from redis.asyncio import Redis

_TAKE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return wait
"""


async def take(redis: Redis, key: str, *, rate: float, capacity: int) -> float:
    """Take one token from `key`: 0.0 when taken, else the seconds until one will be available (nothing taken)."""
    wait_ms = int(await redis.eval(_TAKE, 1, key, repr(float(rate)), str(int(capacity))))  # type: ignore[misc]
    return wait_ms / 1000
