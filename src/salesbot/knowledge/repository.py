"""SQL of the catalog (products) and the knowledge base (chunks) for imports, syncs and reindexing.

Functions execute and flush nothing on their own beyond what they say; the caller's transaction commits. Bulk
writes go out `WRITE_BATCH` rows per statement (executemany), so a large catalog is a few round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Result, Row, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.vector_index import PRODUCTS, VectorTable
from salesbot.models import KnowledgeChunk, Product

# Serializes catalog writers (imports, inventory syncs, reindex) across processes for one transaction.
CATALOG_LOCK_ID = 0x5A1E5B07
WRITE_BATCH = 500

_PRODUCT_COLUMNS = (
    Product.id,
    Product.sku,
    Product.name,
    Product.description,
    Product.category,
    Product.price,
    Product.currency,
    Product.stock,
    Product.attributes,
    Product.active,
    Product.image_url,
    Product.content_hash,
    Product.embedding_model,
    Product.embedding.is_not(None).label("has_embedding"),
)


async def lock_catalog(session: AsyncSession) -> None:
    """Serialize catalog writers until this transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CATALOG_LOCK_ID})


async def count_embedded(session: AsyncSession, table: VectorTable) -> int:
    """How many rows of `table` hold a vector."""
    model = Product if table is PRODUCTS else KnowledgeChunk
    return (await session.execute(select(func.count()).where(model.embedding.is_not(None)))).scalar_one()


async def stored_products(session: AsyncSession, skus: Sequence[str] | None = None) -> dict[str, Row[Any]]:
    """The stored products with these SKUs (`None`: all of them) by SKU, without their vectors (`has_embedding`
    says whether one is there)."""
    query = select(*_PRODUCT_COLUMNS)
    if skus is not None:
        query = query.where(Product.sku.in_(skus))
    return {row.sku: row for row in await session.execute(query)}


async def insert_products(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), WRITE_BATCH):
        await session.execute(insert(Product), rows[start : start + WRITE_BATCH])


async def update_products(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Updates by primary key (`id` in each row); every row of one call must name the same columns."""
    for start in range(0, len(rows), WRITE_BATCH):
        await session.execute(update(Product), rows[start : start + WRITE_BATCH])


async def deactivate_products(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    for start in range(0, len(ids), WRITE_BATCH):
        await session.execute(
            update(Product)
            .where(Product.id.in_(ids[start : start + WRITE_BATCH]))
            .values(active=False, updated_at=now)
            .execution_options(synchronize_session=False)
        )


async def stored_chunks(session: AsyncSession, sources: Sequence[str]) -> dict[tuple[str, int], Row[Any]]:
    """The stored chunks of these source files by (source, chunk index), without their vectors."""
    rows: Result[Any] = await session.execute(
        select(
            KnowledgeChunk.id,
            KnowledgeChunk.source,
            KnowledgeChunk.chunk_index,
            KnowledgeChunk.content_hash,
            KnowledgeChunk.embedding_model,
            KnowledgeChunk.embedding.is_not(None).label("has_embedding"),
        ).where(KnowledgeChunk.source.in_(sources))
    )
    return {(row.source, row.chunk_index): row for row in rows}


async def insert_chunks(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), WRITE_BATCH):
        await session.execute(insert(KnowledgeChunk), rows[start : start + WRITE_BATCH])


async def update_chunks(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Updates by primary key (`id` in each row); every row of one call must name the same columns."""
    for start in range(0, len(rows), WRITE_BATCH):
        await session.execute(update(KnowledgeChunk), rows[start : start + WRITE_BATCH])


async def delete_chunks(session: AsyncSession, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), WRITE_BATCH):
        await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.id.in_(ids[start : start + WRITE_BATCH])))
