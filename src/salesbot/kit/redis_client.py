"""The process's Redis clients: arq's client class on a pool that stays fast while the event loop is busy.

redis-py's default asyncio pool (5.x) hands out a connection under one lock and, still holding it, checks the
connection with a read that waits for the next event-loop iteration. Every command of the process queues behind
that lock, one per iteration: a worker holding a hundred turns, or an API under a webhook burst, gets a few hundred
Redis commands a second, and jobs time out waiting for a connection. `BlockingConnectionPool` checks the connection
outside its lock (`bench/bench_redis_pool.py`: 300 vs 4,500-9,000 commands/s with one busy task on the loop).
"""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

from salesbot.kit.logging import get_logger

log = get_logger(__name__)

# Connections one client opens at most; a command beyond them waits up to POOL_WAIT_SECONDS for a free one. Redis
# serves 10,000 clients by default: a worker's 100 turn slots, 20 messaging slots and pollers fit with room.
MAX_CONNECTIONS = 256
POOL_WAIT_SECONDS = 10.0
# Fail fast on a dead Redis: readiness must report it, not hang on it.
CONNECT_TIMEOUT_SECONDS = 2.0
CONNECT_ATTEMPTS = 3
CONNECT_RETRY_SECONDS = 1.0


def client(url: str) -> ArqRedis:
    """An unconnected client for `url` (redis://, rediss:// or unix://) that owns its pool."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    redis = ArqRedis(connection_pool=pool)
    redis.auto_close_connection_pool = True  # closing the client closes its pool (redis' `from_pool`)
    return redis


async def connect(url: str) -> ArqRedis:
    """A client whose server answered a PING, after up to CONNECT_ATTEMPTS tries (as arq's `create_pool`)."""
    attempt = 1
    while True:
        redis = client(url)
        try:
            await redis.ping()
        except (TimeoutError, RedisError, OSError) as error:
            await redis.aclose()
            if attempt >= CONNECT_ATTEMPTS:
                raise
            log.warning("redis.connect_retry", attempt=attempt, error=type(error).__name__)
            await asyncio.sleep(CONNECT_RETRY_SECONDS)
            attempt += 1
        else:
            return redis
