"""The demo business shipped in the package and its loading on the first start of `salesbot dev`."""

from __future__ import annotations

import asyncio
import csv
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.knowledge.catalog_rows import read_product_file
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.seed import DEMO_KNOWLEDGE, DEMO_PRODUCTS, seed_demo_data, seed_demo_if_empty
from salesbot.knowledge.text import detect_language
from salesbot.knowledge.vector_index import PRODUCTS, column_dimension
from salesbot.models import KnowledgeChunk, Product
from salesbot.settings import Settings


def _has_script(text: str, low: str, high: str) -> bool:
    return any(low <= char <= high for char in text)


def test_demo_catalog_is_one_realistic_multilingual_business() -> None:
    records, rejected = read_product_file(DEMO_PRODUCTS, default_currency="AED")
    assert rejected == []
    assert len(records) >= 200
    assert {record.currency for record in records} == {"AED"}
    assert all(record.price > 0 and record.name and record.description for record in records)
    categories = Counter(record.category for record in records)
    assert len(categories) >= 12
    assert min(categories.values()) >= 5
    arabic = [r for r in records if _has_script(r.description, "\u0600", "\u06ff")]
    russian = [r for r in records if _has_script(r.description, "\u0400", "\u04ff")]
    assert len(arabic) >= 60
    assert len(russian) >= 60
    assert all(not _has_script(r.name, "\u0400", "\u06ff") for r in records)  # names in English
    assert any(record.stock == 0 for record in records)
    assert any(record.stock > 0 for record in records)
    assert all("brand" in record.attributes and "warranty_months" in record.attributes for record in records)
    with DEMO_PRODUCTS.open(encoding="utf-8") as handle:
        assert next(csv.reader(handle))[:3] == ["sku", "name", "category"]


def test_demo_knowledge_base_covers_the_policies() -> None:
    files = {path.stem: path.read_text(encoding="utf-8") for path in DEMO_KNOWLEDGE.glob("*.md")}
    assert set(files) == {"company", "delivery", "payment", "warranty", "returns"}
    for text in files.values():
        sections = [block for block in text.split("\n## ") if block.strip()]
        assert {detect_language(section) for section in sections} == {"en", "ar", "ru"}


async def test_seed_loads_an_empty_catalog_once(db_session: AsyncSession, offline_embedder: OfflineEmbedder) -> None:
    first = await seed_demo_data(db_session, offline_embedder)
    assert first.products is not None
    assert first.products.added >= 200
    assert not first.products.rejected
    assert first.knowledge is not None
    assert first.knowledge.added >= 20
    second = await seed_demo_data(db_session, offline_embedder)
    assert second.products is None
    assert second.knowledge is None


async def test_seed_entry_point_of_salesbot_dev(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # `salesbot dev` calls it synchronously before starting the API and the worker.
    result = await asyncio.to_thread(seed_demo_if_empty, settings)
    assert result.products is not None
    assert result.products.added >= 200
    async with sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(Product))).scalar_one() >= 200
        assert (await session.execute(select(func.count()).select_from(KnowledgeChunk))).scalar_one() >= 20
    again = await asyncio.to_thread(seed_demo_if_empty, settings)
    assert again.products is None
    assert again.knowledge is None


async def test_salesbot_dev_reembeds_a_catalog_of_another_model(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """`make run` after the model changed (the default did): the demo data is re-embedded, not left to full-text."""
    await asyncio.to_thread(seed_demo_if_empty, settings)
    other = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"dim": 256})})
    try:
        result = await asyncio.to_thread(seed_demo_if_empty, other)
        assert result.products is None  # not loaded twice
        async with sessionmaker() as session:
            models = (await session.execute(select(Product.embedding_model).distinct())).scalars().all()
            assert models == ["offline-ngram-v1-256"]
            assert await column_dimension(session, PRODUCTS) == 256
    finally:
        await asyncio.to_thread(seed_demo_if_empty, settings)  # back to the suite's model for later tests
