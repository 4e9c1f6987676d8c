"""Database engine, session factory and the declarative base (with a constraint naming convention)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> AsyncEngine:
    overflow = pool_size if max_overflow is None else max_overflow
    return create_async_engine(url, pool_size=pool_size, max_overflow=overflow, pool_pre_ping=True)


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
