"""Knowledge fixtures: the offline embedder and a database holding the demo catalog (seeded once per session)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.seed import seed_demo_data
from tests.fakes.embedder import RecordingEmbedder
from tests.knowledge.databases import migrated_database

DEMO_DATABASE = "salesbot_knowledge_demo"


@pytest.fixture(scope="session")
def offline_embedder() -> OfflineEmbedder:
    return OfflineEmbedder(1024)


@pytest.fixture
def recording_embedder(offline_embedder: OfflineEmbedder) -> RecordingEmbedder:
    return RecordingEmbedder(offline_embedder)


@pytest.fixture(scope="session")
def demo_database_url(postgres: EmbeddedPostgres) -> str:
    return migrated_database(postgres, DEMO_DATABASE)


@pytest.fixture(scope="session")
async def demo_engine(demo_database_url: str, offline_embedder: OfflineEmbedder) -> AsyncIterator[AsyncEngine]:
    """A database of its own with the demo catalog and knowledge base, loaded through `seed_demo_data`."""
    engine = create_engine(demo_database_url, pool_size=2)
    async with unit_of_work(create_sessionmaker(engine)) as session:
        result = await seed_demo_data(session, offline_embedder)
    assert result.products is not None
    assert result.products.added >= 200
    yield engine
    await engine.dispose()


@pytest.fixture
async def demo_session(demo_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session on the demo database whose changes are rolled back after the test."""
    async with demo_engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()
