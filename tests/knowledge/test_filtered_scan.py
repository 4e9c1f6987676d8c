"""pgvector < 0.8 filters after the HNSW scan: a selective filter must still yield k results when k exist."""

from __future__ import annotations

import random
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.catalog_rows import CatalogRow
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.ingest import import_products
from salesbot.knowledge.search import HybridSearch
from salesbot.knowledge.types import ProductFilters
from salesbot.knowledge.vector_index import pgvector_version
from salesbot.models import Product

KINDS = ["laptop", "monitor", "printer", "router", "headset", "keyboard", "webcam", "projector", "tablet", "chair"]
BRANDS = ["Lenovo", "HP", "Dell", "Asus", "Acer", "Canon", "Epson", "Logitech", "Samsung", "LG"]
ROWS = 2000
RARE_PRICE = Decimal("4321.00")  # 1% of the rows, spread over every kind


def _catalog() -> list[CatalogRow]:
    rng = random.Random(7)
    records = []
    for number in range(ROWS):
        kind = KINDS[number % len(KINDS)]
        brand = rng.choice(BRANDS)
        rare = number % 100 == 0
        records.append(
            CatalogRow(
                sku=f"SYN-{number:05d}",
                name=f"{brand} {kind} model {rng.randint(100, 999)}",
                description=f"{brand} {kind} for offices, series {rng.choice('ABCDEFGH')}{rng.randint(1, 9)}",
                category=kind.capitalize(),
                price=RARE_PRICE if rare else Decimal(rng.randint(50, 4000)),
                currency="USD",
                stock=rng.randint(0, 50),
            )
        )
    return records


async def test_selective_filter_returns_k_rows_where_a_plain_index_scan_does_not(
    db_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    await import_products(db_session, _catalog(), offline_embedder)
    filters = ProductFilters(min_price=RARE_PRICE, max_price=RARE_PRICE)
    vector = await offline_embedder.embed_query("laptop")

    # What a naive filtered HNSW query gives on pgvector 0.6 (the index scan stops at ef_search candidates and
    # the filter then drops almost all of them): fewer than 10 rows although 20 match.
    version = await pgvector_version(db_session)
    if version < (0, 8):
        await db_session.execute(text("SET LOCAL enable_seqscan = off"))
        naive = (
            await db_session.execute(
                select(Product.id)
                .where(Product.price == RARE_PRICE)
                .order_by(Product.embedding.cosine_distance(vector))
                .limit(10)
            )
        ).all()
        await db_session.execute(text("SET LOCAL enable_seqscan = on"))
        assert len(naive) < 10

    hits = await HybridSearch(db_session, offline_embedder).search_products("laptop", filters=filters, limit=10)
    assert len(hits) == 10
    assert all(hit.price == RARE_PRICE for hit in hits)
    # Ranked by similarity among the matching rows: the rare laptops come first.
    assert all("laptop" in hit.name for hit in hits[:2])

    everything = await HybridSearch(db_session, offline_embedder).search_products("laptop", filters=filters, limit=50)
    assert len(everything) == ROWS // 100
