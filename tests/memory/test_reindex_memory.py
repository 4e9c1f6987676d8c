"""A model change: `salesbot reindex` resizes the memory's vector column and re-embeds the remembered facts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.reindex import reindex
from salesbot.knowledge.vector_index import column_dimension
from salesbot.memory.service import MEMORIES, adapt_empty_column, recall, remember
from salesbot.memory.types import FactDraft, MemoryKind
from salesbot.models import Channel, Customer, CustomerMemory
from tests.knowledge.databases import migrated_database


@pytest.fixture(scope="module")
def memory_resize_url(postgres: EmbeddedPostgres) -> str:
    return migrated_database(postgres, "salesbot_memory_resize")


@pytest.fixture
async def engine(memory_resize_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(memory_resize_url, pool_size=2)
    yield engine
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE customers RESTART IDENTITY CASCADE"))
    await engine.dispose()


async def test_reindex_to_another_dimension_reembeds_the_memory(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    old, new = OfflineEmbedder(1024), OfflineEmbedder(256)
    async with unit_of_work(sessions) as session:
        customer = Customer(channel=Channel.CONSOLE, chat_id="memory-reindex")
        session.add(customer)
        await session.flush()
        customer_id = customer.id
        await remember(
            session,
            old,
            customer_id=customer_id,
            conversation_id=None,  # a fact whose conversation was deleted
            message_id=None,
            facts=[FactDraft(MemoryKind.PRODUCT, "HP-LJM211DW", "Asked about HP LaserJet M211dw Printer")],
        )

    async with unit_of_work(sessions) as session:
        await reindex(session, new)

    async with sessions() as session:
        assert await column_dimension(session, MEMORIES) == 256
        models = (await session.scalars(select(CustomerMemory.embedding_model))).all()
        assert models == [new.name]
        found = await recall(session, customer_id, "LaserJet printer", 3, embedder=new)
        assert [fact.text for fact in found] == ["Asked about HP LaserJet M211dw Printer"]
        # Vectors of the old model are not compared with the new model's queries.
        assert await recall(session, customer_id, "LaserJet printer", 3, embedder=old) == []

    async with unit_of_work(sessions) as session:
        await reindex(session, old)
    async with sessions() as session:
        assert await column_dimension(session, MEMORIES) == 1024


async def test_a_worker_starting_with_another_model_sizes_the_empty_memory_to_it(engine: AsyncEngine) -> None:
    """The migration sized the column for one model; the worker runs another. Before the first fact, the column
    takes the worker's dimension (else every memory write fails); once facts exist, only a reindex changes it."""
    sessions = create_sessionmaker(engine)
    other = OfflineEmbedder(384)
    async with unit_of_work(sessions) as session:
        assert await column_dimension(session, MEMORIES) != other.dim
        assert await adapt_empty_column(session, other)
        customer = Customer(channel=Channel.CONSOLE, chat_id="memory-adapt")
        session.add(customer)
        await session.flush()
        stored = await remember(
            session,
            other,
            customer_id=customer.id,
            conversation_id=None,
            message_id=None,
            facts=[FactDraft(MemoryKind.PRODUCT, "HP-LJM211DW", "Asked about HP LaserJet M211dw Printer")],
        )
    assert stored == 1
    async with unit_of_work(sessions) as session:
        assert await column_dimension(session, MEMORIES) == other.dim
        # A remembered fact is never dropped at start-up: the column stays until `salesbot reindex`.
        assert not await adapt_empty_column(session, OfflineEmbedder(1024))
        assert await column_dimension(session, MEMORIES) == other.dim
        assert await adapt_empty_column(session, other) is False
    async with unit_of_work(sessions) as session:
        await reindex(session, OfflineEmbedder(1024))
