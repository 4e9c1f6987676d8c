"""Catalog and knowledge ingestion: `salesbot ingest products FILE [--full] [--strict]`, `salesbot ingest knowledge
PATH`. This module orchestrates; files are read by `catalog_files`, rows checked by `catalog_rows` (the columns
are listed there), SQL lives in `repository`.

Products are upserted by SKU in the caller's transaction. Bad rows are reported with their line number (CSV, JSON
Lines) or item number (JSON) and every problem they have, and skipped; with `strict`, one bad row rejects the
whole file and nothing is written. Only rows whose embedded text changed (content hash) or that were embedded by
another model are embedded again; `--full` deactivates active products that the file no longer lists.

Knowledge: Markdown or text files (a file or a folder, recursively), chunked by headings and paragraphs
(`chunking.py`). A file's chunks replace those previously ingested from the same source path; unchanged chunks
keep their vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from salesbot.kit.logging import get_logger
from salesbot.knowledge import repository, vector_index
from salesbot.knowledge.catalog_files import PRODUCT_FILE_SUFFIXES, UNSUPPORTED_FILE, IngestError, RowError
from salesbot.knowledge.catalog_rows import CatalogRow, read_product_file
from salesbot.knowledge.chunking import Chunk, chunk_file
from salesbot.knowledge.documents import chunk_document, content_hash
from salesbot.knowledge.embeddings import Embedder, Matrix
from salesbot.knowledge.vector_index import (
    KNOWLEDGE,
    PRODUCTS,
    VectorTable,
    column_dimension,
    create_vector_index,
    drop_vector_index,
    set_dimension,
)

log = get_logger(__name__)

KNOWLEDGE_FILE_SUFFIXES = {".md", ".markdown", ".txt"}
# Up to this many SKUs the stored products are looked up by SKU; beyond it one scan of the table is cheaper.
LOOKUP_BY_SKU_UP_TO = 2000


class RejectedFileError(IngestError):
    """A strict import found bad rows: nothing was written; `rejected` lists every bad row."""

    def __init__(self, rejected: Sequence[RowError]) -> None:
        super().__init__(f"{len(rejected)} bad row(s), nothing imported (--strict)")
        self.rejected = list(rejected)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    embedded: int = 0
    rejected: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deactivated {self.deactivated}, rejected {len(self.rejected)} (embedded {self.embedded})"
        )


@dataclass
class KnowledgeReport:
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    rejected: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.files} files: chunks added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"removed {self.removed}, rejected files {len(self.rejected)} (embedded {self.embedded})"
        )


async def ensure_vector_dimension(session: AsyncSession, table: VectorTable, embedder: Embedder) -> None:
    """The column must hold this embedder's vectors: an empty one is adapted, a filled one needs `reindex`."""
    dim = await column_dimension(session, table)
    if dim == embedder.dim:
        return
    if await repository.count_embedded(session, table):
        raise IngestError(
            f"{table.table}.embedding holds {dim}-dimensional vectors but {embedder.name} makes {embedder.dim}: "
            "run `salesbot reindex` first"
        )
    await set_dimension(session, table, embedder.dim)


async def embed_in_batches(
    embedder: Embedder, documents: Sequence[str], *, batch_size: int, progress: bool, label: str
) -> Matrix:
    """All vectors for `documents`, embedded `batch_size` at a time with a progress bar."""
    if not documents:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    parts: list[Matrix] = []
    with tqdm(total=len(documents), desc=f"embedding {label}", unit=label, disable=not progress, leave=False) as bar:
        for start in range(0, len(documents), batch_size):
            batch = documents[start : start + batch_size]
            parts.append(await embedder.embed_documents(batch))
            bar.update(len(batch))
    return np.concatenate(parts)


def _product_values(record: CatalogRow) -> dict[str, Any]:
    return {
        "name": record.name,
        "description": record.description,
        "category": record.category,
        "price": record.price,
        "currency": record.currency,
        "stock": record.stock,
        "attributes": record.attributes,
        "active": record.active,
        "image_url": record.image_url,
    }


async def import_products(
    session: AsyncSession,
    records: Sequence[CatalogRow],
    embedder: Embedder,
    *,
    full: bool = False,
    rejected: Sequence[RowError] = (),
    batch_size: int = 32,
    progress: bool = False,
) -> ImportReport:
    """Upsert `records` by SKU (flushes; the caller commits). See the module docstring for the rules."""
    report = ImportReport(rejected=list(rejected))
    if full and not records:
        raise IngestError("refusing a --full import without a single valid product (it would deactivate everything)")
    await repository.lock_catalog(session)
    await ensure_vector_dimension(session, PRODUCTS, embedder)
    lookup = None if full or len(records) > LOOKUP_BY_SKU_UP_TO else [record.sku for record in records]
    existing = await repository.stored_products(session, lookup)

    new: list[tuple[CatalogRow, str]] = []
    changed: list[tuple[int, CatalogRow, str, bool]] = []  # id, record, hash, needs a vector
    for record in records:
        digest = content_hash(record.document)
        row = existing.get(record.sku)
        if row is None:
            new.append((record, digest))
            continue
        fields_changed = any(getattr(row, key) != value for key, value in _product_values(record).items())
        needs_vector = not row.has_embedding or row.content_hash != digest or row.embedding_model != embedder.name
        if fields_changed:
            report.updated += 1
        else:
            report.unchanged += 1
        if fields_changed or needs_vector:
            changed.append((row.id, record, digest, needs_vector))

    to_embed = [record.document for record, _ in new] + [record.document for _, record, _, needs in changed if needs]
    vectors = await embed_in_batches(embedder, to_embed, batch_size=batch_size, progress=progress, label="products")
    report.embedded = len(to_embed)

    # `existing` holds only the imported SKUs' rows: what the index would be rebuilt for is the whole table.
    # (Fewer vectors than a rebuild needs are not worth counting the table for.)
    rebuild_index = len(to_embed) >= vector_index.REBUILD_MIN_VECTORS and vector_index.rebuild_pays(
        writing=len(to_embed), keeping=await repository.count_embedded(session, PRODUCTS)
    )
    if rebuild_index:
        await drop_vector_index(session, PRODUCTS)
    now = datetime.now(UTC)
    new_rows = [
        {
            "sku": record.sku,
            **_product_values(record),
            "embedding": vectors[position],
            "embedding_model": embedder.name,
            "content_hash": digest,
        }
        for position, (record, digest) in enumerate(new)
    ]
    await repository.insert_products(session, new_rows)
    report.added = len(new)

    position = len(new)
    with_vector: list[dict[str, Any]] = []
    without_vector: list[dict[str, Any]] = []
    for product_id, record, digest, needs in changed:
        values = {"id": product_id, **_product_values(record), "updated_at": now}
        if needs:
            values.update(embedding=vectors[position], embedding_model=embedder.name, content_hash=digest)
            position += 1
            with_vector.append(values)
        else:
            without_vector.append(values)
    await repository.update_products(session, with_vector)
    await repository.update_products(session, without_vector)

    if full:
        # A rejected row's SKU is reported, not treated as gone from the file.
        keep = {record.sku for record in records} | {error.sku for error in rejected if error.sku}
        stale_ids = [row.id for sku, row in existing.items() if row.active and sku not in keep]
        await repository.deactivate_products(session, stale_ids, now)
        report.deactivated = len(stale_ids)
    if rebuild_index:
        await create_vector_index(session, PRODUCTS)
    await session.flush()
    log.info("knowledge.products_imported", **{k: v for k, v in vars(report).items() if k != "rejected"})
    return report


async def ingest_product_file(
    session: AsyncSession,
    path: Path,
    embedder: Embedder,
    *,
    full: bool = False,
    strict: bool = False,
    default_currency: str | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> ImportReport:
    """Import a product file; rows without a currency take `default_currency` (default: the shipped playbook's, the
    command line passes the configured one): prices are the business's, never silently dollars. With `strict`,
    any bad row raises `RejectedFileError` before anything is written."""
    if path.suffix.lower() not in PRODUCT_FILE_SUFFIXES:
        raise IngestError(f"{path}: {UNSUPPORTED_FILE}")
    if default_currency is None:
        from salesbot.agent.playbook import load_playbook

        default_currency = load_playbook().currency
    records, rejected = read_product_file(path, default_currency=default_currency)
    if strict and rejected:
        log.info("knowledge.products_file_rejected", rejected=len(rejected))
        raise RejectedFileError(rejected)
    return await import_products(
        session, records, embedder, full=full, rejected=rejected, batch_size=batch_size, progress=progress
    )


# ---- knowledge ----------------------------------------------------------------------------------------------


def knowledge_files(path: Path) -> list[tuple[str, Path]]:
    """(source, file) pairs: a file is its own name, a folder's files are named relative to the folder."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise IngestError(f"{path} does not exist")
    return sorted(
        (file.relative_to(path).as_posix(), file)
        for file in path.rglob("*")
        if file.is_file() and file.suffix.lower() in KNOWLEDGE_FILE_SUFFIXES and not file.name.startswith(".")
    )


async def ingest_knowledge_path(
    session: AsyncSession, path: Path, embedder: Embedder, *, batch_size: int = 32, progress: bool = False
) -> KnowledgeReport:
    """Chunk and upsert every Markdown/text file under `path` (flushes; the caller commits)."""
    report = KnowledgeReport()
    files = knowledge_files(path)
    await ensure_vector_dimension(session, KNOWLEDGE, embedder)
    plan: list[tuple[str, list[Chunk]]] = []
    for source, file in files:
        try:
            content = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            report.rejected.append(RowError(0, f"{source}: cannot read: {exc}", unit="file"))
            continue
        if len(source) > 500:
            report.rejected.append(RowError(0, f"{source[:80]}...: path longer than 500 characters", unit="file"))
            continue
        plan.append((source, chunk_file(file, content)))
    report.files = len(plan)
    existing = await repository.stored_chunks(session, [source for source, _ in plan])

    pending: list[tuple[str, Chunk, str, Any]] = []  # source, chunk, hash, existing row
    for source, chunks in plan:
        for chunk in chunks:
            digest = content_hash(chunk_document(title=chunk.title, content=chunk.content))
            row = existing.pop((source, chunk.index), None)
            if (
                row is not None
                and row.has_embedding
                and row.content_hash == digest
                and row.embedding_model == embedder.name
            ):
                report.unchanged += 1
                continue
            pending.append((source, chunk, digest, row))
    documents = [chunk_document(title=chunk.title, content=chunk.content) for _, chunk, _, _ in pending]
    vectors = await embed_in_batches(embedder, documents, batch_size=batch_size, progress=progress, label="chunks")
    report.embedded = len(documents)
    now = datetime.now(UTC)
    added: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for position, (source, chunk, digest, row) in enumerate(pending):
        values: dict[str, Any] = {
            "title": chunk.title,
            "content": chunk.content,
            "language": chunk.language,
            "embedding": vectors[position],
            "embedding_model": embedder.name,
            "content_hash": digest,
        }
        if row is None:
            added.append({"source": source, "chunk_index": chunk.index, **values})
        else:
            updated.append({"id": row.id, **values, "updated_at": now})
    await repository.insert_chunks(session, added)
    await repository.update_chunks(session, updated)
    report.added, report.updated = len(added), len(updated)
    # Chunks beyond a file's new length (the file got shorter) are gone.
    leftover = [row.id for row in existing.values()]
    await repository.delete_chunks(session, leftover)
    report.removed = len(leftover)
    await session.flush()
    log.info("knowledge.documents_imported", **{k: v for k, v in vars(report).items() if k != "rejected"})
    return report
