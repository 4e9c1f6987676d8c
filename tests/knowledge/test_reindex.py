"""Model changes: detection, `reindex` re-embedding only stale rows, and a dimension change of the columns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge.catalog_files import IngestError
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.ingest import ingest_knowledge_path, ingest_product_file
from salesbot.knowledge.reindex import embedding_status, reindex
from salesbot.knowledge.search import HybridSearch
from salesbot.knowledge.seed import DEMO_KNOWLEDGE, DEMO_PRODUCTS
from salesbot.knowledge.vector_index import KNOWLEDGE, PRODUCTS, column_dimension
from salesbot.models import Product
from tests.fakes.embedder import RecordingEmbedder
from tests.knowledge.databases import migrated_database


async def index_oid(session: AsyncSession) -> int | None:
    oid = await session.scalar(text("SELECT to_regclass(:name)::oid"), {"name": PRODUCTS.index})
    return None if oid is None else int(oid)


async def test_reindex_reembeds_rows_of_another_model_then_nothing(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder
) -> None:
    await ingest_product_file(db_session, DEMO_PRODUCTS, recording_embedder, default_currency="AED")
    await ingest_knowledge_path(db_session, DEMO_KNOWLEDGE, recording_embedder)
    new_model = RecordingEmbedder(recording_embedder.inner, model_name="new-model")

    statuses = {status.table: status for status in await embedding_status(db_session, new_model)}
    assert statuses["products"].needs_reindex
    assert statuses["products"].stale == statuses["products"].rows
    assert statuses["products"].column_dim == 1024 == statuses["products"].model_dim

    index_before = await index_oid(db_session)
    reports = await reindex(db_session, new_model)
    assert [(report.table, report.reembedded == report.rows, report.dim_changed) for report in reports] == [
        ("products", True, False),
        ("knowledge_chunks", True, False),
    ]
    # Every product was re-embedded: the index was built once afterwards rather than updated row by row.
    assert await index_oid(db_session) not in (None, index_before)
    assert all(not status.needs_reindex for status in await embedding_status(db_session, new_model))

    new_model.reset()
    assert [report.reembedded for report in await reindex(db_session, new_model)] == [0, 0]
    assert new_model.document_calls == 0


async def test_reindex_catches_text_edited_outside_the_importer(
    db_session: AsyncSession, recording_embedder: RecordingEmbedder
) -> None:
    await ingest_product_file(db_session, DEMO_PRODUCTS, recording_embedder, default_currency="AED")
    # An edit in the admin panel changes the text but not the vector.
    await db_session.execute(
        update(Product).where(Product.sku == "LOG-MXM3S").values(description="Now with a USB-C receiver.")
    )
    recording_embedder.reset()
    reports = await reindex(db_session, recording_embedder)
    assert reports[0].reembedded == 1
    assert len(recording_embedder.documents) == 1
    assert "USB-C receiver" in recording_embedder.documents[0]


@pytest.fixture(scope="module")
def resize_database_url(postgres: EmbeddedPostgres) -> str:
    return migrated_database(postgres, "salesbot_knowledge_resize")


@pytest.fixture
async def resize_engine(resize_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(resize_database_url, pool_size=2)
    yield engine
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE products, knowledge_chunks RESTART IDENTITY"))
    await engine.dispose()


async def test_a_new_dimension_resizes_the_columns_and_rebuilds_the_index(
    resize_engine: AsyncEngine, offline_embedder: OfflineEmbedder, tmp_path: Path
) -> None:
    sessions = create_sessionmaker(resize_engine)
    async with unit_of_work(sessions) as session:
        await ingest_product_file(session, DEMO_PRODUCTS, offline_embedder, default_currency="AED")
        await ingest_knowledge_path(session, DEMO_KNOWLEDGE, offline_embedder)

    small = OfflineEmbedder(256)
    async with unit_of_work(sessions) as session:
        with pytest.raises(IngestError, match="run `salesbot reindex` first"):
            await ingest_product_file(session, DEMO_PRODUCTS, small, default_currency="AED")
    async with unit_of_work(sessions) as session:
        # The customers' memory (empty here) follows the model too.
        statuses = await embedding_status(session, small)
        assert [(s.table, s.needs_reindex) for s in statuses] == [
            ("products", True),
            ("knowledge_chunks", True),
            ("customer_memories", True),
        ]
        reports = await reindex(session, small)
    assert all(report.dim_changed and report.reembedded == report.rows > 0 for report in reports)

    async with sessions() as session:
        assert await column_dimension(session, PRODUCTS) == 256
        assert await column_dimension(session, KNOWLEDGE) == 256
        rows = await session.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'products'"))
        indexes: dict[str, str] = dict(rows.all())
        assert "USING hnsw (embedding vector_cosine_ops)" in indexes["ix_products_embedding_hnsw"]
        hits = await HybridSearch(session, small).search_products("ноутбук Lenovo ThinkPad T14")
        assert "LEN-TP-T14G4-I7" in [hit.sku for hit in hits]
        # The vector branch really runs at the new dimension (no dimension-mismatch fallback).
        search = HybridSearch(session, small)
        assert await search._ready(PRODUCTS)
        assert all(not status.needs_reindex for status in await embedding_status(session, small))

    # Back to the original model: sized back, everything re-embedded once more.
    async with unit_of_work(sessions) as session:
        reports = await reindex(session, offline_embedder)
    assert all(report.dim_changed and report.column_dim == 1024 for report in reports)


async def test_an_empty_column_follows_the_model_without_reindex(resize_engine: AsyncEngine, tmp_path: Path) -> None:
    small = OfflineEmbedder(128)
    sessions = create_sessionmaker(resize_engine)
    async with unit_of_work(sessions) as session:
        report = await ingest_product_file(session, DEMO_PRODUCTS, small, default_currency="AED")
        assert report.added > 200
        assert await column_dimension(session, PRODUCTS) == 128
        await reindex(session, OfflineEmbedder(1024))
