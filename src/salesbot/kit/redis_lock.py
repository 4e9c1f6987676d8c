"""A Redis lock that never loses a wake-up: whoever finds it busy leaves a "run again" flag for the holder.

Jobs that serialise per chat (a conversation turn, a conversation's deliveries) cannot simply wait for the lock:
waiting would occupy a worker slot, and giving up would drop work that arrived while the holder was busy. So
`acquire` either takes the lock or atomically raises a rerun flag; `release` drops the lock and reports (and
clears) the flag, and the releasing job schedules one more run. A holder that dies never releases: its lock
expires after `ttl`, which callers keep below the job's crash-recovery time (job timeout + 10 s in arq): the re-run
of the dead holder's job then takes the lock, finds the flag (kept for 3 × ttl) and schedules the missed run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from redis.asyncio import Redis

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2] * 3)
return {0, redis.call('PTTL', KEYS[1])}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local rerun = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
if rerun then return 1 end
return 0
"""


@dataclass(frozen=True)
class Acquired:
    ok: bool
    # When busy: milliseconds until the current holder's lock expires (if it never releases it).
    busy_for_ms: int = 0


@dataclass
class FlaggingLock:
    redis: Redis
    key: str
    ttl_ms: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def rerun_key(self) -> str:
        return f"{self.key}:rerun"

    async def acquire(self) -> Acquired:
        ok, ttl = await self.redis.eval(_ACQUIRE, 2, self.key, self.rerun_key, self.token, str(self.ttl_ms))  # type: ignore[misc]
        return Acquired(ok=bool(ok), busy_for_ms=max(0, int(ttl)))

    async def release(self) -> bool:
        """Release (if still ours); True when another run was requested while the lock was held."""
        rerun = await self.redis.eval(_RELEASE, 2, self.key, self.rerun_key, self.token)  # type: ignore[misc]
        return bool(rerun)
