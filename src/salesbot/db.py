"""Database engine, session factory and the declarative base (with a constraint naming convention)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import MetaData, event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from salesbot.kit import pgvector_binary

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """`pre_ping`: a connection taken from the pool is tested with a query first (three round trips with asyncpg:
    BEGIN, an empty statement, ROLLBACK). Without it, a pooled connection the server has closed (a restart, an
    idle timeout) is still replaced, for free: the driver saw its socket close. Only a connection that died
    unnoticed fails its first statement, and SQLAlchemy then drops the whole pool; the job retries."""
    overflow = pool_size if max_overflow is None else max_overflow
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=overflow, pool_pre_ping=pre_ping)
    pgvector_binary.install(engine)
    if not pre_ping:
        event.listen(engine.sync_engine.pool, "checkout", _replace_closed)
    return engine


def _replace_closed(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    """Checkout hook: a connection whose socket the server closed is discarded and the pool tries another."""
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        raise exc.DisconnectionError("the database closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession], *, bind: AsyncConnection | None = None
) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back otherwise (the edge of a job).

    `bind`: a connection the caller holds (and that is not in a transaction) instead of one from the pool."""
    async with sessionmaker() if bind is None else sessionmaker(bind=bind) as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
