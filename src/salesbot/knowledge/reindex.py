"""`salesbot reindex`: bring every stored vector in line with the configured embedding model.

Each vector is stored with the name of the model that made it (`embedding_model`) and the hash of the text it
was made from (`content_hash`). A row is re-embedded when its vector is missing, was made by another model, or
its text changed since (an edit in the admin panel, say). When the model's dimension differs from the
column's, the column is altered to the new dimension (old vectors dropped) and its HNSW index rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.kit.logging import get_logger
from salesbot.knowledge.documents import chunk_document, content_hash, product_document
from salesbot.knowledge.embeddings import Embedder
from salesbot.knowledge.ingest import embed_in_batches
from salesbot.knowledge.repository import WRITE_BATCH, lock_catalog
from salesbot.knowledge.vector_index import (
    KNOWLEDGE,
    PRODUCTS,
    VectorTable,
    column_dimension,
    create_vector_index,
    drop_vector_index,
    rebuild_pays,
    set_dimension,
)
from salesbot.models import CustomerMemory, KnowledgeChunk, Product

log = get_logger(__name__)


@dataclass(frozen=True)
class EmbeddingStatus:
    table: str
    rows: int
    current: int  # rows with a vector from the configured model
    column_dim: int | None
    model_dim: int

    @property
    def stale(self) -> int:
        return self.rows - self.current if self.column_dim == self.model_dim else self.rows

    @property
    def needs_reindex(self) -> bool:
        return self.column_dim != self.model_dim or self.stale > 0


@dataclass(frozen=True)
class ReindexReport:
    table: str
    rows: int
    reembedded: int
    dim_changed: bool
    column_dim: int

    def summary(self) -> str:
        resized = f", column resized to vector({self.column_dim})" if self.dim_changed else ""
        return f"{self.table}: {self.reembedded} of {self.rows} rows re-embedded{resized}"


def _model(table: VectorTable) -> type[Product] | type[KnowledgeChunk]:
    return Product if table is PRODUCTS else KnowledgeChunk


async def embedding_status(session: AsyncSession, embedder: Embedder) -> list[EmbeddingStatus]:
    """How many rows of each table carry a vector of the configured model (cheap: two counts per table): the
    catalog, the knowledge base and the customers' memory."""
    # Imported here: the memory domain builds on knowledge.
    from salesbot.memory.service import MEMORIES

    statuses: list[EmbeddingStatus] = []
    tables: tuple[tuple[VectorTable, type[Product] | type[KnowledgeChunk] | type[CustomerMemory]], ...] = (
        (PRODUCTS, Product),
        (KNOWLEDGE, KnowledgeChunk),
        (MEMORIES, CustomerMemory),
    )
    for table, model in tables:
        rows = (await session.execute(select(func.count()).select_from(model))).scalar_one()
        current = (
            await session.execute(
                select(func.count()).where(model.embedding.is_not(None), model.embedding_model == embedder.name)
            )
        ).scalar_one()
        dim = await column_dimension(session, table)
        statuses.append(EmbeddingStatus(table.table, rows, current, dim, embedder.dim))
    return statuses


def _documents(table: VectorTable, rows: list[Any]) -> list[str]:
    if table is PRODUCTS:
        return [
            product_document(
                sku=row.sku,
                name=row.name,
                category=row.category,
                description=row.description,
                attributes=row.attributes,
            )
            for row in rows
        ]
    return [chunk_document(title=row.title, content=row.content) for row in rows]


async def reindex_table(
    session: AsyncSession,
    table: VectorTable,
    embedder: Embedder,
    *,
    force: bool = False,
    batch_size: int = 32,
    progress: bool = False,
) -> ReindexReport:
    model = _model(table)
    dim_changed = await set_dimension(session, table, embedder.dim)
    if table is PRODUCTS:
        columns: tuple[Any, ...] = (
            Product.id,
            Product.sku,
            Product.name,
            Product.category,
            Product.description,
            Product.attributes,
        )
    else:
        columns = (KnowledgeChunk.id, KnowledgeChunk.title, KnowledgeChunk.content)
    state = (model.content_hash, model.embedding_model, model.embedding.is_not(None).label("has_embedding"))
    rows = list(await session.execute(select(*columns, *state).order_by(model.id)))
    documents = _documents(table, rows)
    stale: list[tuple[Any, str, str]] = []
    for row, document in zip(rows, documents, strict=True):
        digest = content_hash(document)
        if force or not row.has_embedding or row.embedding_model != embedder.name or row.content_hash != digest:
            stale.append((row, document, digest))
    rebuild = rebuild_pays(writing=len(stale), keeping=len(rows) - len(stale))
    if rebuild:
        await drop_vector_index(session, table)
    vectors = await embed_in_batches(
        embedder, [document for _, document, _ in stale], batch_size=batch_size, progress=progress, label=table.table
    )
    now = datetime.now(UTC)
    values = [
        {
            "id": row.id,
            "embedding": vectors[position],
            "embedding_model": embedder.name,
            "content_hash": digest,
            "updated_at": now,
        }
        for position, (row, _, digest) in enumerate(stale)
    ]
    for start in range(0, len(values), WRITE_BATCH):
        await session.execute(update(model), values[start : start + WRITE_BATCH])
    if rebuild:
        await create_vector_index(session, table)
    await session.flush()
    report = ReindexReport(table.table, len(rows), len(stale), dim_changed, embedder.dim)
    log.info("knowledge.reindexed", **vars(report))
    return report


async def reindex(
    session: AsyncSession, embedder: Embedder, *, force: bool = False, batch_size: int = 32, progress: bool = False
) -> list[ReindexReport]:
    """Re-embed what is stale in products and knowledge chunks (flushes; the caller commits)."""
    await lock_catalog(session)
    reports = [
        await reindex_table(session, table, embedder, force=force, batch_size=batch_size, progress=progress)
        for table in (PRODUCTS, KNOWLEDGE)
    ]
    # The customers' memory follows the same model (imported here: the memory domain builds on knowledge).
    from salesbot.memory.service import reembed as reembed_memory

    await reembed_memory(session, embedder, force=force)
    return reports
