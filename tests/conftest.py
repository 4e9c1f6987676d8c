"""Shared fixtures: one embedded PostgreSQL (+pgvector) and one Redis per test session, migrated once.

- `settings`: Settings pointing at them (no .env, offline LLM and embedder).
- `db_session`: a session inside a transaction that is rolled back after the test.
- `sessionmaker` + `clean_db`: real commits (for code that commits itself), tables truncated afterwards.
- `redis`: an arq pool on the test Redis, flushed after each test.
- `resources`, `run_worker`: the worker's context and an in-process arq worker in burst mode.
"""

from __future__ import annotations

import asyncio
import os

# Before salesbot is imported: no developer .env may leak into tests (a real LLM key, say).
os.environ["SALESBOT_ENV_FILE"] = ""
for _name in list(os.environ):
    if _name.startswith(
        ("WAZZUP_", "TWILIO_", "LLM_", "EMBEDDING_", "INVENTORY_", "STRIPE_", "HUBSPOT_", "ZOHO_")
    ) or _name in (
        "DATABASE_URL",
        "REDIS_URL",
    ):
        del os.environ[_name]
# The suite embeds with the fast n-gram embedder (1024 dims, as the vector columns are then declared); tests of
# the multilingual default model ask for it explicitly (tests/knowledge/test_use_embedder.py).
os.environ["EMBEDDING_MODEL"] = "offline"

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from salesbot.db import Base, create_engine, create_sessionmaker
from salesbot.devstack import EmbeddedPostgres, EmbeddedRedis
from salesbot.kit import redis_client
from salesbot.kit.arq_worker import QueueWorker
from salesbot.migrate import upgrade
from salesbot.resources import Resources, open_resources
from salesbot.settings import AuthSettings, Settings

TEST_DATABASE = "salesbot_test"


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(services_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(services_dir, tuned_for_tests=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(services_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(services_dir, persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    postgres.create_database(TEST_DATABASE)
    url = postgres.url(TEST_DATABASE)
    upgrade(url)
    return url


# Not the shipped placeholders: salesbot refuses those whenever provider credentials are configured, as the
# pipeline tests' are. `TEST_SECRETS_ENV` gives the same values to the salesbot processes tests start.
TEST_SECRETS_ENV = {
    "API_TOKEN": "suite-api-token-7d1e4c9b2a",
    "ADMIN_PASSWORD": "suite-admin-password-5f8a",
    "SECRET_KEY": "suite-secret-key-0b3c6e9f2a5d8c1e",
}


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "salesbot_env": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "public_base_url": "https://bot.example.test",
        "auth": AuthSettings(
            api_token=TEST_SECRETS_ENV["API_TOKEN"],
            admin_password=TEST_SECRETS_ENV["ADMIN_PASSWORD"],
            secret_key=TEST_SECRETS_ENV["SECRET_KEY"],
        ),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, redis_server: EmbeddedRedis) -> Settings:
    return make_settings(database_url, redis_server.url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose work (including its commits) is rolled back when the test ends."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


async def truncate_all(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that really commit; every table is truncated after the test."""
    yield create_sessionmaker(engine)
    await truncate_all(engine)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    await truncate_all(engine)


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[ArqRedis]:
    pool = await redis_client.connect(redis_server.url)
    await pool.flushdb()
    yield pool
    await pool.flushdb()
    await pool.aclose()


@pytest.fixture
async def resources(settings: Settings, redis: ArqRedis, clean_db: None) -> AsyncIterator[Resources]:
    """Everything a job or request gets, against the test services (database truncated afterwards)."""
    async with open_resources(settings, redis=redis) as opened:
        yield opened


WorkerRunner = Callable[..., Awaitable[list[Worker]]]


@pytest.fixture
async def run_worker(resources: Resources) -> AsyncIterator[WorkerRunner]:
    """Run the in-process arq workers of every queue in burst mode until their queues are empty."""
    from salesbot.worker import process_options

    async def run(**overrides: Any) -> list[Worker]:
        workers = [
            QueueWorker(
                **{**options, "poll_delay": 0.01, **overrides},
                ctx={"resources": resources},
                # Not closed afterwards: Worker.close() would also close the shared pool.
                redis_pool=resources.redis,
                burst=True,
                handle_signals=False,
            )
            for options in process_options(resources.settings)
        ]
        await asyncio.gather(*(worker.main() for worker in workers))
        return workers

    return run
