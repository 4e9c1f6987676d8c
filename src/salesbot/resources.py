"""Process-wide resources (engine, Redis/arq pool, HTTP client), opened once by the API lifespan or the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from salesbot.db import create_engine, create_sessionmaker
from salesbot.kit import metrics, redis_client
from salesbot.kit.hashing import use_secret_key
from salesbot.settings import Settings

HTTP_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
# Connections beyond a sized pool (`db_connections`), for a job that briefly needs a second session.
DB_OVERFLOW = 10


@dataclass(frozen=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # ArqRedis is a redis.asyncio.Redis: one pool serves coordination state and job enqueueing.
    redis: ArqRedis
    http: httpx.AsyncClient


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    redis: ArqRedis | None = None,
    db_connections: int | None = None,
    db_pre_ping: bool = True,
) -> AsyncIterator[Resources]:
    """Open everything a process needs; `redis` reuses a pool the caller already has (the arq worker's).

    `db_connections`: the database connections the process keeps (default: 10, and as many again under bursts).
    `db_pre_ping`: test a pooled connection with a round trip before use (see `salesbot.db.create_engine`)."""
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("DATABASE_URL and REDIS_URL must be set (or run `salesbot dev` for embedded services)")
    # Redis keys and logs hash phone numbers with SECRET_KEY: the API and the worker must agree on it.
    use_secret_key(settings.auth.secret_key.get_secret_value())
    engine = (
        create_engine(settings.database_url, pre_ping=db_pre_ping)
        if db_connections is None
        else create_engine(
            settings.database_url, pool_size=db_connections, max_overflow=DB_OVERFLOW, pre_ping=db_pre_ping
        )
    )
    own_redis = redis is None
    pool = redis if redis is not None else await redis_client.connect(settings.redis_url)
    http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
    try:
        # Fleet-wide metrics (`kit.metrics`) are recorded into this process's Redis from now on.
        with metrics.bound(pool):
            yield Resources(settings, engine, create_sessionmaker(engine), pool, http)
    finally:
        # Graceful shutdown: the metrics this process recorded but has not written yet go to Redis now.
        await metrics.flush(pool)
        await http.aclose()
        if own_redis:
            await pool.aclose()
        await engine.dispose()
