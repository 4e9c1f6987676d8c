"""The demo business loaded by `salesbot dev` on first start: Falcon Office Systems, an IT and office equipment
supplier in Dubai. `demo/products.csv` holds its catalog (251 products in AED, English descriptions, about half
also in Arabic and Russian) and `demo/knowledge/` its policies (company, delivery, payment, warranty, returns).
"""

from __future__ import annotations

import asyncio
import csv
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import Embedder, get_embedder
from salesbot.knowledge.ingest import ImportReport, KnowledgeReport, ingest_knowledge_path, ingest_product_file
from salesbot.knowledge.reindex import embedding_status, reindex
from salesbot.models import KnowledgeChunk, Product
from salesbot.settings import Settings

log = get_logger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_PRODUCTS = DEMO_DIR / "products.csv"
DEMO_KNOWLEDGE = DEMO_DIR / "knowledge"
DEMO_CURRENCY = "AED"
# A line of a demo description written in Arabic or Cyrillic script (the translations).
_TRANSLATED_LINE = re.compile(r"[\u0400-\u04ff\u0600-\u06ff]")


def write_english_only_catalog(target: Path) -> Path:
    """The demo catalog as most businesses have theirs, in one language: its Arabic and Russian description
    lines removed. Written to `target` (a .csv); the search benchmark and the multilingual tests load it."""
    with DEMO_PRODUCTS.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        lines = row["description"].splitlines()
        row["description"] = "\n".join(line for line in lines if not _TRANSLATED_LINE.search(line)).strip()
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return target


@dataclass(frozen=True)
class SeedResult:
    products: ImportReport | None
    knowledge: KnowledgeReport | None


async def seed_demo_data(
    session: AsyncSession, embedder: Embedder, *, batch_size: int = 32, progress: bool = False
) -> SeedResult:
    """Load the demo catalog if there are no products, and the demo knowledge if there are no chunks."""
    products = knowledge = None
    if not (await session.execute(select(exists().where(Product.id.is_not(None))))).scalar():
        products = await ingest_product_file(
            session, DEMO_PRODUCTS, embedder, default_currency=DEMO_CURRENCY, batch_size=batch_size, progress=progress
        )
    if not (await session.execute(select(exists().where(KnowledgeChunk.id.is_not(None))))).scalar():
        knowledge = await ingest_knowledge_path(
            session, DEMO_KNOWLEDGE, embedder, batch_size=batch_size, progress=progress
        )
    return SeedResult(products, knowledge)


async def _seed(settings: Settings) -> SeedResult:
    engine = create_engine(settings.database_url, pool_size=2)
    embedder = get_embedder(settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            result = await seed_demo_data(session, embedder, batch_size=settings.embedding.batch_size, progress=True)
            # A development database filled by another model (the default changed, or EMBEDDING_MODEL did):
            # re-embed it now, so `make run` answers with the configured model, not full-text alone.
            if any(status.needs_reindex for status in await embedding_status(session, embedder)):
                for report in await reindex(session, embedder, batch_size=settings.embedding.batch_size):
                    log.info("knowledge.dev_reindexed", summary=report.summary())
            return result
    finally:
        await engine.dispose()


def seed_demo_if_empty(settings: Settings) -> SeedResult:
    """Blocking entry point for `salesbot dev` (runs before the API and the worker start); also re-embeds
    what another model embedded."""
    result = asyncio.run(_seed(settings))
    if result.products is not None:
        log.info("knowledge.demo_catalog_loaded", products=result.products.added)
    if result.knowledge is not None:
        log.info("knowledge.demo_knowledge_loaded", chunks=result.knowledge.added)
    return result
