"""The knowledge commands of the `salesbot` CLI: `ingest products`, `ingest knowledge`, `reindex`.

Each runs in one transaction: an error rolls everything back and exits 1; rows rejected during an import are
listed and skipped, and the rest is committed (exit 0). With `--strict`, a product file with a bad row is listed
and nothing is imported (exit 1).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.knowledge.catalog_files import IngestError, RowError
from salesbot.knowledge.embeddings import EmbeddingError, get_embedder
from salesbot.knowledge.ingest import RejectedFileError, ingest_knowledge_path, ingest_product_file
from salesbot.knowledge.reindex import embedding_status, reindex
from salesbot.settings import Settings

T = TypeVar("T")
MAX_LISTED_ERRORS = 50


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T | None:
    try:
        return asyncio.run(_in_transaction(settings, work))
    except (IngestError, EmbeddingError) as exc:
        if isinstance(exc, RejectedFileError):
            _print_rejected(exc.rejected)
        print(f"error: {exc}", file=sys.stderr)
        return None


def _print_rejected(rejected: list[RowError]) -> None:
    for error in rejected[:MAX_LISTED_ERRORS]:
        print(f"  rejected {error}", file=sys.stderr)
    if len(rejected) > MAX_LISTED_ERRORS:
        print(f"  ... and {len(rejected) - MAX_LISTED_ERRORS} more", file=sys.stderr)


def ingest_products(settings: Settings, path: Path, *, full: bool = False, strict: bool = False) -> int:
    from salesbot.agent.playbook import PlaybookError, load_playbook

    embedder = get_embedder(settings)
    try:
        currency = load_playbook(settings.conversation.playbook_path or None).currency
    except PlaybookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = _run(
        settings,
        lambda session: ingest_product_file(
            session,
            path,
            embedder,
            full=full,
            strict=strict,
            default_currency=currency,
            batch_size=settings.embedding.batch_size,
            progress=True,
        ),
    )
    if report is None:
        return 1
    _print_rejected(report.rejected)
    print(f"products from {path}: {report.summary()}")
    return 0


def ingest_knowledge(settings: Settings, path: Path) -> int:
    embedder = get_embedder(settings)
    report = _run(
        settings,
        lambda session: ingest_knowledge_path(
            session, path, embedder, batch_size=settings.embedding.batch_size, progress=True
        ),
    )
    if report is None:
        return 1
    _print_rejected(report.rejected)
    print(f"knowledge from {path}: {report.summary()}")
    return 0


def reindex_all(settings: Settings, *, force: bool = False, check: bool = False) -> int:
    """Re-embed stale rows; with `check`, only report and exit 1 when a reindex is needed."""
    embedder = get_embedder(settings)
    if check:
        statuses = _run(settings, lambda session: embedding_status(session, embedder))
        if statuses is None:
            return 1
        for status in statuses:
            print(
                f"{status.table}: {status.current} of {status.rows} rows embedded by {embedder.name}, "
                f"column vector({status.column_dim}), model {status.model_dim} dimensions"
            )
        return 1 if any(status.needs_reindex for status in statuses) else 0
    reports = _run(
        settings,
        lambda session: reindex(
            session, embedder, force=force, batch_size=settings.embedding.batch_size, progress=True
        ),
    )
    if reports is None:
        return 1
    for report in reports:
        print(report.summary())
    return 0
