"""Hybrid search on the demo catalog with the offline embedder: relevance, filters, knowledge, degradation."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.embeddings import OfflineEmbedder, QueryEmbeddingCache
from salesbot.knowledge.search import HybridSearch, plan_vector_scan, product_conditions
from salesbot.knowledge.types import CatalogSearch, ProductFilters
from salesbot.knowledge.vector_index import PRODUCTS, checked_dimension, forget_dimensions
from salesbot.models import KnowledgeChunk, Product
from tests.fakes.embedder import RecordingEmbedder
from tests.knowledge.labeled_queries import LABELED_QUERIES


def test_labeled_set_covers_three_languages() -> None:
    languages = [language for language, _, _ in LABELED_QUERIES]
    assert len(LABELED_QUERIES) >= 30
    assert min(languages.count(language) for language in ("en", "ar", "ru")) >= 10
    assert len({query for _, query, _ in LABELED_QUERIES}) == len(LABELED_QUERIES)


@pytest.mark.parametrize(("language", "query", "sku"), LABELED_QUERIES, ids=[q for _, q, _ in LABELED_QUERIES])
async def test_labeled_query_finds_product_in_top_5(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder, language: str, query: str, sku: str
) -> None:
    hits = await HybridSearch(demo_session, offline_embedder).search_products(query, limit=5)
    assert sku in [hit.sku for hit in hits], f"[{language}] {query!r}: {[hit.sku for hit in hits]}"


async def test_hits_carry_catalog_fields(demo_session: AsyncSession, offline_embedder: OfflineEmbedder) -> None:
    search: CatalogSearch = HybridSearch(demo_session, offline_embedder)
    hit = (await search.search_products("HP LaserJet Pro M404dn", limit=1))[0]
    product = (await demo_session.execute(select(Product).where(Product.sku == hit.sku))).scalar_one()
    assert (hit.sku, hit.name, hit.price, hit.currency, hit.stock, hit.category) == (
        product.sku,
        product.name,
        product.price,
        "AED",
        product.stock,
        "Printers",
    )
    assert 0 < len(hit.description) <= 280
    assert " ".join(product.description.split()).startswith(hit.description.rstrip("…"))
    assert 0 < hit.score <= 1


FILTER_QUERIES = ["laptop", "monitor 27 inch", "ноутбук", "طابعة ليزر", "wireless", "UPS", "toner HP", "chair"]
FILTERS = [
    ProductFilters(max_price=Decimal(500)),
    ProductFilters(max_price=Decimal(2000), in_stock_only=True),
    ProductFilters(in_stock_only=True),
    ProductFilters(min_price=Decimal(3000)),
    ProductFilters(min_price=Decimal(1000), max_price=Decimal(1500)),
    ProductFilters(category="Laptops", max_price=Decimal(2500)),
    ProductFilters(category="monitor", in_stock_only=True),  # singular and lower case: "Monitors"
    ProductFilters(category="Toner & Ink", max_price=Decimal(100)),
    ProductFilters(category="Scanners", in_stock_only=True),  # fewer matches than asked for
    ProductFilters(min_price=Decimal(15000)),  # a handful of products
]


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
async def test_filters_are_respected_and_k_results_returned_when_k_exist(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder, filters: ProductFilters
) -> None:
    search = HybridSearch(demo_session, offline_embedder)
    matching = (
        await demo_session.execute(select(func.count()).select_from(Product).where(*product_conditions(filters)))
    ).scalar_one()
    assert matching > 0
    rows = {
        product.sku: product
        for product in (await demo_session.execute(select(Product).where(*product_conditions(filters)))).scalars()
    }
    for limit in (3, 10):
        for query in FILTER_QUERIES:
            hits = await search.search_products(query, filters=filters, limit=limit)
            assert len(hits) == min(limit, matching), (query, limit, matching, [hit.sku for hit in hits])
            for hit in hits:
                assert hit.sku in rows
                if filters.max_price is not None:
                    assert hit.price <= filters.max_price
                if filters.min_price is not None:
                    assert hit.price >= filters.min_price
                if filters.in_stock_only:
                    assert hit.stock > 0
            assert len({hit.sku for hit in hits}) == len(hits)


async def test_inactive_products_are_never_returned(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    await demo_session.execute(update(Product).where(Product.sku == "HP-LJPM404DN").values(active=False))
    search = HybridSearch(demo_session, offline_embedder)
    hits = await search.search_products("HP LaserJet Pro M404dn", limit=10)
    assert "HP-LJPM404DN" not in [hit.sku for hit in hits]
    assert await search.get_product("HP-LJPM404DN") is None
    everything = await search.search_products(
        "HP LaserJet Pro M404dn", filters=ProductFilters(active_only=False), limit=10
    )
    assert "HP-LJPM404DN" in [hit.sku for hit in everything]


async def test_get_product_by_sku(demo_session: AsyncSession, offline_embedder: OfflineEmbedder) -> None:
    search = HybridSearch(demo_session, offline_embedder)
    exact = await search.get_product("LOG-MXM3S")
    assert exact is not None
    assert exact.name == "Logitech MX Master 3S Wireless Mouse"
    assert exact.price == Decimal(399)
    assert await search.get_product(" log-mxm3s ") == exact
    assert await search.get_product("NO-SUCH-SKU") is None
    assert await search.get_product("") is None


async def test_search_knowledge_returns_source_and_title(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    search = HybridSearch(demo_session, offline_embedder)
    cases = [
        ("how long is delivery to Abu Dhabi?", "delivery.md"),
        ("can I pay in instalments with my credit card", "payment.md"),
        ("how do I return an unopened product", "returns.md"),
        ("warranty claim for a broken laptop", "warranty.md"),
        ("where is your showroom and when are you open", "company.md"),
        ("هل التوصيل مجاني؟", "delivery.md"),
        ("تقسيط بالبطاقة", "payment.md"),
        ("возврат товара", "returns.md"),
        ("гарантия на ноутбук", "warranty.md"),
    ]
    for query, source in cases:
        hits = await search.search_knowledge(query, limit=3)
        assert hits, query
        assert source in [hit.source for hit in hits], (query, [(hit.source, hit.title) for hit in hits])
        assert all(hit.title and hit.content for hit in hits)
    delivery = (await search.search_knowledge("delivery charges", limit=1))[0]
    assert delivery.source == "delivery.md"
    assert delivery.title.startswith("Delivery ›")


async def test_deactivated_knowledge_is_never_retrieved(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    search = HybridSearch(demo_session, offline_embedder)
    before = await search.search_knowledge("delivery charges", limit=10)
    assert "Delivery › Delivery charges" in [hit.title for hit in before]
    await demo_session.execute(
        update(KnowledgeChunk).where(KnowledgeChunk.title == "Delivery › Delivery charges").values(active=False)
    )
    after = await search.search_knowledge("delivery charges", limit=10)
    assert after
    assert "Delivery › Delivery charges" not in [hit.title for hit in after]


async def test_queries_without_content_words_do_not_crash(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    search = HybridSearch(demo_session, offline_embedder)
    for query in ["", "   ", "?!", "hello", "привет", '"', "-", "or", "a & b | c", "'; DROP TABLE products; --"]:
        assert isinstance(await search.search_products(query), list)
        assert isinstance(await search.search_knowledge(query), list)
    assert await search.search_products("") == []
    # Filters alone browse the catalog: in stock first, then by price.
    browsed = await search.search_products("", filters=ProductFilters(category="Tablets"), limit=4)
    assert len(browsed) == 4
    assert all(hit.category == "Tablets" and hit.score == 0 for hit in browsed)
    in_stock = [hit for hit in browsed if hit.stock > 0]
    assert browsed[: len(in_stock)] == in_stock
    assert [hit.price for hit in in_stock] == sorted(hit.price for hit in in_stock)


async def test_index_settings_do_not_leak_into_the_callers_transaction(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    before = (await demo_session.execute(text("SELECT current_setting('hnsw.ef_search', true)"))).scalar()
    await HybridSearch(demo_session, offline_embedder).search_products(
        "laptop", filters=ProductFilters(max_price=Decimal(100))
    )
    after = (await demo_session.execute(text("SELECT current_setting('hnsw.ef_search', true)"))).scalar()
    assert after == before


async def test_vectors_of_another_model_are_not_compared(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    """After EMBEDDING_MODEL changed (before `reindex`), only full-text can find rows: no garbage similarity."""
    other = RecordingEmbedder(offline_embedder, model_name="another-model")
    hits = await HybridSearch(demo_session, other).search_products("Fortinet firewall", limit=10)
    assert other.queries == ["Fortinet firewall"]
    assert hits[0].sku == "FTN-FG40F"
    for hit in hits:  # every hit is a full-text match
        assert "firewall" in f"{hit.name} {hit.description}".lower() or "fortinet" in hit.name.lower()
    # A word that no product contains finds nothing, although every row has a (foreign) vector.
    assert await HybridSearch(demo_session, other).search_products("qwertyuiop") == []


async def test_dimension_mismatch_degrades_to_full_text(
    demo_session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    small = OfflineEmbedder(64)
    with caplog.at_level(logging.WARNING):
        hits = await HybridSearch(demo_session, small).search_products("Fortinet firewall")
    assert hits[0].sku == "FTN-FG40F"
    assert await HybridSearch(demo_session, small).search_products("qwertyuiop") == []
    assert "knowledge.vector_search_disabled" in caplog.text
    # The caller's transaction is intact.
    assert (await demo_session.execute(select(func.count()).select_from(Product))).scalar_one() >= 200


async def test_a_matching_column_is_looked_up_once_per_connection(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder
) -> None:
    """Every turn searches: the column's dimension is read from the catalog once per pooled connection, not per
    search (a statement a turn)."""
    lookups: list[str] = []

    def executed(*args: Any) -> None:
        if "pg_attribute" in args[2]:
            lookups.append(args[2])

    forget_dimensions()
    sync_engine = demo_session.bind.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", executed)
    try:
        for query in ("laptop", "ноутбук", "office printer"):
            assert await HybridSearch(demo_session, offline_embedder).search_products(query)
    finally:
        event.remove(sync_engine, "before_cursor_execute", executed)
    assert len(lookups) == 1
    assert await checked_dimension(demo_session, PRODUCTS, offline_embedder.dim) == offline_embedder.dim


async def test_a_column_changed_by_another_process_is_found_after_one_failed_search(
    demo_session: AsyncSession, offline_embedder: OfflineEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    """A reindex in another process does not tell this one: the remembered match makes one vector query fail
    (the caller's transaction survives it), and the next search reads the column again and stops comparing."""
    assert await HybridSearch(demo_session, offline_embedder).search_products("laptop")  # remembered
    # What `salesbot reindex` to a 64-dimension model does elsewhere (without this process's set_dimension).
    await demo_session.execute(text("ALTER TABLE products ALTER COLUMN embedding TYPE vector(64) USING NULL"))
    await demo_session.execute(text("UPDATE products SET embedding = array_fill(0.1, ARRAY[64])::vector"))
    with caplog.at_level(logging.WARNING):
        first = await HybridSearch(demo_session, offline_embedder).search_products("Fortinet firewall")
        assert "knowledge.vector_search_failed" in caplog.text
        assert "knowledge.vector_search_disabled" not in caplog.text
        second = await HybridSearch(demo_session, offline_embedder).search_products("Fortinet firewall")
    assert "knowledge.vector_search_disabled" in caplog.text
    assert first[0].sku == second[0].sku == "FTN-FG40F"  # full text still finds it
    assert await checked_dimension(demo_session, PRODUCTS, offline_embedder.dim) == 64


async def test_query_embeddings_are_cached_in_redis(
    demo_session: AsyncSession, recording_embedder: RecordingEmbedder, redis: ArqRedis
) -> None:
    first = await HybridSearch(demo_session, recording_embedder, redis=redis).search_products("Jabra headset")
    second = await HybridSearch(demo_session, recording_embedder, redis=redis).search_products("Jabra  headset ")
    assert first == second
    assert recording_embedder.queries == ["Jabra headset"]
    keys = await redis.keys("knowledge:qemb:*")
    assert len(keys) == 1
    assert QueryEmbeddingCache.key(recording_embedder, "Jabra headset").encode() in keys


async def test_query_cache_survives_a_redis_outage(offline_embedder: OfflineEmbedder) -> None:
    from redis.asyncio import Redis

    dead = Redis(unix_socket_path="/nonexistent/redis.sock", socket_connect_timeout=0.2)
    try:
        vector = await QueryEmbeddingCache(dead).embed_query(offline_embedder, "laser printer")
    finally:
        await dead.aclose()
    assert vector.shape == (1024,)
    assert vector.tolist() == (await offline_embedder.embed_query("laser printer")).tolist()


def test_scan_plan_follows_the_pgvector_version() -> None:
    old_unfiltered = dict(plan_vector_scan((0, 6, 2), filtered=False).settings)
    old_filtered = dict(plan_vector_scan((0, 6, 2), filtered=True).settings)
    new_filtered = dict(plan_vector_scan((0, 8, 0), filtered=True).settings)
    new_unfiltered = dict(plan_vector_scan((0, 8, 0), filtered=False).settings)
    # pgvector's widest candidate list everywhere; the iterative scan only where a filter drops candidates.
    assert {s["hnsw.ef_search"] for s in (old_unfiltered, old_filtered, new_filtered, new_unfiltered)} == {"1000"}
    assert "hnsw.iterative_scan" not in old_unfiltered | old_filtered | new_unfiltered
    assert new_filtered["hnsw.iterative_scan"] == "strict_order"
