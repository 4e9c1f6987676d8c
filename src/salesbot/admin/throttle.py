"""Failed admin logins, counted per client address and per account over a sliding 15-minute window (in Redis).

- An address that fails MAX_FAILURES_PER_ADDRESS times in the window is refused, whatever account it tries.
- An account that fails MAX_FAILURES_PER_ACCOUNT times in the window (from any addresses) is locked.

The per-address limit is below the per-account one, so failures from one address can never lock an account,
and they never block anyone else's address. Each failure is forgotten WINDOW_SECONDS after it happened, so a
locked account unlocks at most WINDOW_SECONDS after the last failure that counted (refused attempts are not
counted: a locked account is not kept locked by the attempts it refuses). Shared by every API process.
"""

from __future__ import annotations

import secrets
import time

from redis.asyncio import Redis

from salesbot.kit.hashing import short_hash

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ADDRESS = 10
MAX_FAILURES_PER_ACCOUNT = 50


def now() -> float:
    """The throttle's clock (tests move it instead of waiting)."""
    return time.time()


def _address_key(address: str) -> str:
    return f"admin:login:fail:address:{short_hash(address)}"


def _account_key(username: str) -> str:
    return f"admin:login:fail:account:{short_hash(username.casefold())}"


class LoginThrottle:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def _retry_after(self, key: str, limit: int, at: float) -> float:
        """Seconds until `key` has fewer than `limit` failures in the window (0: now)."""
        await self._redis.zremrangebyscore(key, "-inf", at - WINDOW_SECONDS)
        if await self._redis.zcard(key) < limit:
            return 0.0
        # The (count - limit + 1)-th oldest failure must leave the window for the count to drop below the limit.
        count = await self._redis.zcard(key)
        entries = await self._redis.zrange(key, count - limit, count - limit, withscores=True)
        return max(float(entries[0][1]) + WINDOW_SECONDS - at, 1.0) if entries else 0.0

    async def blocked_for(self, address: str, username: str) -> int:
        """Whole seconds until this address may try this account again (0: it may now)."""
        at = now()
        waits = (
            await self._retry_after(_address_key(address), MAX_FAILURES_PER_ADDRESS, at),
            await self._retry_after(_account_key(username), MAX_FAILURES_PER_ACCOUNT, at),
        )
        return int(max(waits) + 0.999)

    async def record_failure(self, address: str, username: str) -> None:
        at = now()
        member = f"{at:.6f}:{secrets.token_hex(4)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (_address_key(address), _account_key(username)):
                pipe.zadd(key, {member: at})
                pipe.expire(key, WINDOW_SECONDS + 60)
            await pipe.execute()

    async def forget_address(self, address: str) -> None:
        """After a successful login: the address's own mistakes are forgiven (the account's count stays)."""
        await self._redis.delete(_address_key(address))
