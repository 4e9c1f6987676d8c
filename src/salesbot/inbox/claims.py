"""Idempotent claims of provider message ids in Redis, a fast path in front of the database's unique keys.

A claim is `pending` (short TTL) while the request that took it persists the event, and `done` (24 h) after
the commit. A redelivery that finds `done` is dropped without touching the database. One that finds `pending`
(a concurrent copy still in flight) is not dropped: it goes on to `INSERT ... ON CONFLICT DO NOTHING`, which
waits for the first copy's transaction and then does nothing. So a crash between claim and commit never turns
into a lost message, and a Redis outage (no claim possible) still never turns into a duplicate.
"""

from __future__ import annotations

import enum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import EchoMessage, InboundEvent, InboundMessage, StatusUpdate

log = get_logger(__name__)

PENDING_TTL_MS = 60_000
DONE_TTL_MS = 24 * 3600 * 1000
_PENDING = b"pending"

_RELEASE = """
if redis.call('GET', KEYS[1]) == 'pending' then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Per key: 0 claimed now (NEW), 1 `pending` or gone (IN_FLIGHT), 2 anything else, i.e. `done` (DONE).
_CLAIM = """
local states = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    states[i] = 0
  else
    local state = redis.call('GET', key)
    if (not state) or state == ARGV[1] then states[i] = 1 else states[i] = 2 end
  end
end
return states
"""


class Claim(enum.Enum):
    NEW = "new"  # this request owns the event
    IN_FLIGHT = "in_flight"  # a concurrent copy is being persisted; the database decides
    DONE = "done"  # already persisted: a duplicate
    UNAVAILABLE = "unavailable"  # Redis is down; the database decides


_STATES = (Claim.NEW, Claim.IN_FLIGHT, Claim.DONE)


def claim_key(event: InboundEvent) -> str:
    # Message ids are hashed too: keys never need to be read back, and some ids embed addresses.
    ident = short_hash(event.provider_message_id, length=32)
    match event:
        case InboundMessage() | EchoMessage():
            return f"sb:inbox:msg:{event.channel.value}:{ident}"
        case StatusUpdate():
            return f"sb:inbox:status:{event.channel.value}:{ident}:{event.status.value}"


async def claim_many(redis: Redis, keys: list[str]) -> list[Claim]:
    """Claim each key, in order, in one round trip (a repeated key finds its first occurrence's `pending`)."""
    if not keys:
        return []
    try:
        states = await redis.eval(_CLAIM, len(keys), *keys, _PENDING.decode(), str(PENDING_TTL_MS))  # type: ignore[misc]
    except RedisError as exc:
        log.warning("inbox.claim_unavailable", error=type(exc).__name__)
        return [Claim.UNAVAILABLE] * len(keys)
    return [_STATES[int(state)] for state in states]


async def mark_done(redis: Redis, keys: list[str]) -> None:
    if not keys:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, b"done", px=DONE_TTL_MS)
            await pipe.execute()
    except RedisError as exc:
        # The rows are committed; the unique keys keep catching redeliveries.
        log.warning("inbox.claim_unavailable", error=type(exc).__name__)


async def release(redis: Redis, keys: list[str]) -> None:
    """Give back claims of events that were not persisted, so the provider's redelivery is accepted."""
    for key in keys:
        try:
            await redis.eval(_RELEASE, 1, key)  # type: ignore[misc]
        except RedisError:
            return
