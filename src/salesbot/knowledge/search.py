"""Hybrid retrieval over the catalog and the knowledge base: HNSW cosine + full-text, fused by reciprocal rank.

- Vector branch: `embedding <=> query` over rows embedded by the current model (`embedding_model`), through the
  HNSW index. pgvector < 0.8 filters *after* the index scan, so a selective filter can leave fewer than k rows:
  the scan keeps pgvector's widest candidate list (`hnsw.ef_search` 1000, as every query does) and, when it
  still returns fewer
  rows than asked, an exact scan over the filtered rows (a MATERIALIZED CTE, which the planner cannot serve
  from the index) fills in. pgvector >= 0.8 uses iterative index scans (`hnsw.iterative_scan=strict_order`)
  with the same exact fallback. Either way a filtered query returns k results whenever k matching rows exist.
  Index settings are `SET LOCAL` inside a savepoint that is rolled back afterwards, so they never leak into
  the caller's transaction (nor does an error of this branch, which degrades the search to full-text).
- Full-text branch: `websearch_to_tsquery('simple', ...)` (no stemming, so Arabic and Russian work), ranked by
  `ts_rank_cd`. Rows matching every word come first; only when no row does is the AND between words relaxed
  to OR (customers write sentences, not keyword lists). Ranking an OR of common words touches a large share
  of a big catalog, so it is the fallback, not the rule; the vector branch supplies the near matches.
- Category consensus (unless a category filter already decides it): the vector branch's candidates are
  re-ranked by similarity plus how well their category as a whole matches the query.
- Fusion: reciprocal rank fusion (k=60), scores normalized so a row ranked first by both branches scores 1.0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, Row, Select, Text, cast, func, literal, select, text
from sqlalchemy.dialects.postgresql import REGCONFIG, TSQUERY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import Embedder, QueryEmbeddingCache, Vector
from salesbot.knowledge.ranking import RRF_K as RRF_K
from salesbot.knowledge.ranking import category_consensus, reciprocal_rank_fusion
from salesbot.knowledge.text import content_words, fulltext_query, shorten
from salesbot.knowledge.types import KnowledgeHit, ProductFilters, ProductHit
from salesbot.knowledge.vector_index import (
    KNOWLEDGE,
    PRODUCTS,
    VectorTable,
    checked_dimension,
    forget_dimensions,
    pgvector_version,
    supports_iterative_scan,
)
from salesbot.models import KnowledgeChunk, Product

log = get_logger(__name__)

MAX_LIMIT = 50
MIN_CANDIDATES = 20
DESCRIPTION_CHARS = 280
# The HNSW scan's candidate list: pgvector's maximum. With the default embedder (USE, 512 dims) on 24,576 products
# (bench/bench_search.py, two runs), recall@10 against exact search is 0.80-0.84 at 100, 0.93-0.94 at 400 and
# 0.96-0.98 at 800-1000, for a p95 of 1.5, 2.8 and 5-8 ms. At 100,000 products pgvector's default index (m 16,
# ef_construction 64) gives 0.84 at 800 and 0.87 at 1000; a denser index (m 32, ef_construction 200) 0.92-0.95 at
# 1000 over three runs at a p95 of 16-25 ms, and the migrations' (m 32, ef_construction 400) 0.96 and 0.97 (README,
# Performance).
EF_SEARCH = 1000


@dataclass(frozen=True)
class ScanPlan:
    """Index settings for one vector query (applied with SET LOCAL inside a savepoint)."""

    settings: tuple[tuple[str, str], ...]


def plan_vector_scan(version: tuple[int, ...], *, filtered: bool) -> ScanPlan:
    """How to scan the HNSW index: the widest candidate list, and pgvector 0.8's iterative scan for filtered
    queries (before 0.8 the filter drops candidates after the scan, which the wide list makes up for)."""
    if filtered and supports_iterative_scan(version):
        return ScanPlan((("hnsw.ef_search", str(EF_SEARCH)), ("hnsw.iterative_scan", "strict_order")))
    return ScanPlan((("hnsw.ef_search", str(EF_SEARCH)),))


def _category_variants(category: str) -> list[str]:
    """`Printers` for `printer`, `laptop` for `Laptops`: the model rarely spells a category exactly."""
    base = " ".join(category.lower().split())
    variants = {base, base + "s", base + "es"}
    if base.endswith("es"):
        variants.add(base[:-2])
    if base.endswith("s"):
        variants.add(base[:-1])
    return sorted(variant for variant in variants if variant)


def product_conditions(filters: ProductFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.active_only:
        conditions.append(Product.active.is_(True))
    if filters.max_price is not None:
        conditions.append(Product.price <= Decimal(filters.max_price))
    if filters.min_price is not None:
        conditions.append(Product.price >= Decimal(filters.min_price))
    if filters.category and filters.category.strip():
        conditions.append(func.lower(Product.category).in_(_category_variants(filters.category)))
    if filters.in_stock_only:
        conditions.append(Product.stock > 0)
    return conditions


def _is_filtered(filters: ProductFilters) -> bool:
    return any(
        (
            filters.max_price is not None,
            filters.min_price is not None,
            bool(filters.category and filters.category.strip()),
            filters.in_stock_only,
        )
    )


def _tsquery(query_text: str, *, any_word: bool) -> ColumnElement[Any]:
    """websearch_to_tsquery('simple', q); `any_word` relaxes its ANDs to ORs (phrases keep their <->)."""
    parsed = func.websearch_to_tsquery(cast(literal("simple"), REGCONFIG), query_text)
    if not any_word:
        return parsed
    return cast(func.replace(cast(parsed, Text), " & ", " | "), TSQUERY)


class HybridSearch:
    """`CatalogSearch` over one database session (the turn's); `redis` enables the query-embedding cache."""

    def __init__(self, session: AsyncSession, embedder: Embedder, *, redis: Redis | None = None) -> None:
        self.session = session
        self.embedder = embedder
        self.query_cache = QueryEmbeddingCache(redis) if redis is not None else None
        self._vector_ready: dict[str, bool] = {}

    # ---- public API (CatalogSearch) ----------------------------------------------------------------------

    async def search_products(
        self, query: str, *, filters: ProductFilters | None = None, limit: int = 5
    ) -> list[ProductHit]:
        filters = filters or ProductFilters()
        limit = max(1, min(MAX_LIMIT, limit))
        fetch = max(MIN_CANDIDATES, 4 * limit)
        conditions = product_conditions(filters)
        started = time.perf_counter()

        vector_ids: list[int] = []
        vector = await self._query_vector(query)
        if vector is not None:
            nearest = await self._nearest_products(vector, filters=filters, k=fetch)
            if filters.category and filters.category.strip():
                vector_ids = [row.id for row in nearest]
            else:
                vector_ids = category_consensus(nearest)
        text_ids = await self._text_ids(Product, query, conditions, fetch)
        fused = reciprocal_rank_fusion(vector_ids, text_ids)[:limit]
        if not fused and vector is None and _is_filtered(filters):
            # Nothing to match on ("", "hi") but filters to browse by: in-stock first, cheapest first.
            browse = (
                select(Product.id)
                .where(*conditions)
                .order_by((Product.stock > 0).desc(), Product.price, Product.id)
                .limit(limit)
            )
            fused = [(item, 0.0) for item in (await self.session.execute(browse)).scalars()]
        hits = await self._product_hits(fused)
        log.debug(
            "knowledge.products_searched",
            vector=len(vector_ids),
            text=len(text_ids),
            returned=len(hits),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return hits

    async def get_product(self, sku: str) -> ProductHit | None:
        sku = sku.strip()
        if not sku:
            return None
        statement = select(*_HIT_COLUMNS).where(Product.active.is_(True))
        row = (await self.session.execute(statement.where(Product.sku == sku))).one_or_none()
        if row is None:
            # SKUs typed by customers or the model often differ in case; accept that when it is unambiguous.
            candidates = (
                await self.session.execute(statement.where(func.lower(Product.sku) == sku.lower()).limit(2))
            ).all()
            row = candidates[0] if len(candidates) == 1 else None
        return None if row is None else _product_hit(row, 1.0)

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        limit = max(1, min(MAX_LIMIT, limit))
        fetch = max(MIN_CANDIDATES, 4 * limit)
        vector_ids: list[int] = []
        vector = await self._query_vector(query)
        if vector is not None and await self._ready(KNOWLEDGE):
            base = [
                KnowledgeChunk.active.is_(True),
                KnowledgeChunk.embedding.is_not(None),
                KnowledgeChunk.embedding_model == self.embedder.name,
            ]
            nearest = await self._nearest(KNOWLEDGE, KnowledgeChunk, base, vector, filtered=False, fetch=fetch)
            vector_ids = [row.id for row in nearest]
        text_ids = await self._text_ids(KnowledgeChunk, query, [KnowledgeChunk.active.is_(True)], fetch)
        fused = reciprocal_rank_fusion(vector_ids, text_ids)[:limit]
        if not fused:
            return []
        scores = dict(fused)
        columns = (KnowledgeChunk.id, KnowledgeChunk.source, KnowledgeChunk.title, KnowledgeChunk.content)
        rows = (await self.session.execute(select(*columns).where(KnowledgeChunk.id.in_(scores)))).all()
        by_id = {row.id: row for row in rows}
        return [
            KnowledgeHit(source=chunk.source, title=chunk.title, content=chunk.content, score=round(scores[item], 4))
            for item, _ in fused
            if (chunk := by_id.get(item)) is not None
        ]

    async def nearest_product_ids(self, vector: Vector, *, filters: ProductFilters, k: int) -> list[int]:
        """Ids of the k products nearest to `vector` among those matching `filters` (the vector branch alone:
        [] when the stored vectors do not fit the embedder)."""
        return [row.id for row in await self._nearest_products(vector, filters=filters, k=k)]

    async def _nearest_products(self, vector: Vector, *, filters: ProductFilters, k: int) -> list[Row[Any]]:
        """(id, category, similarity) of the k nearest products, nearest first."""
        if not await self._ready(PRODUCTS):
            return []
        base = [
            Product.embedding.is_not(None),
            Product.embedding_model == self.embedder.name,
            *product_conditions(filters),
        ]
        filtered = _is_filtered(filters)
        return await self._nearest(
            PRODUCTS, Product, base, vector, filtered=filtered, fetch=k, extra=(Product.category,)
        )

    # ---- branches -----------------------------------------------------------------------------------------

    async def _query_vector(self, query: str) -> Vector | None:
        if not content_words(query):
            return None
        if self.query_cache is not None:
            vector = await self.query_cache.embed_query(self.embedder, query)
        else:
            vector = np.asarray(await self.embedder.embed_query(" ".join(query.split())), dtype=np.float32)
        return vector if np.any(vector) else None

    async def _ready(self, table: VectorTable) -> bool:
        """False when the column's dimension is not the embedder's (the model changed, `reindex` not run yet)."""
        ready = self._vector_ready.get(table.table)
        if ready is None:
            dim = await checked_dimension(self.session, table, self.embedder.dim)
            ready = self._vector_ready[table.table] = dim == self.embedder.dim
            if not ready:
                log.warning(
                    "knowledge.vector_search_disabled",
                    table=table.table,
                    column_dim=dim,
                    model=self.embedder.name,
                    model_dim=self.embedder.dim,
                    hint="run `salesbot reindex`",
                )
        return ready

    async def _nearest(
        self,
        table: VectorTable,
        model: type[Product] | type[KnowledgeChunk],
        base: list[ColumnElement[bool]],
        vector: Vector,
        *,
        filtered: bool,
        fetch: int,
        extra: Sequence[InstrumentedAttribute[Any]] = (),
    ) -> list[Row[Any]]:
        """Rows of (id, *extra, similarity), nearest first; [] when the vector query failed."""
        plan = plan_vector_scan(await pgvector_version(self.session), filtered=filtered)
        savepoint = await self.session.begin_nested()
        try:
            for name, value in plan.settings:
                await self.session.execute(
                    text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
                )
            rows = list((await self.session.execute(_ann(model, base, vector, fetch, extra))).all())
            if len(rows) < fetch:
                # The index scan gave fewer rows than asked: filters removed them after the scan (or the table
                # is small). An exact scan over the filtered rows returns every match there is.
                rows = list((await self.session.execute(_exact(model, base, vector, fetch, extra))).all())
        except DBAPIError as exc:
            log.warning("knowledge.vector_search_failed", table=table.table, error=str(exc.orig)[:200])
            self._vector_ready[table.table] = False
            forget_dimensions()  # a reindex elsewhere may have changed the column: look again next time
            rows = []
        finally:
            await savepoint.rollback()
        return rows

    async def _text_ids(
        self,
        model: type[Product] | type[KnowledgeChunk],
        query: str,
        conditions: list[ColumnElement[bool]],
        fetch: int,
    ) -> list[int]:
        query_text = fulltext_query(query)
        if not query_text:
            return []
        ids = await self._text_ranked(model, _tsquery(query_text, any_word=False), conditions, fetch)
        if not ids and len(query_text.split()) > 1:
            ids = await self._text_ranked(model, _tsquery(query_text, any_word=True), conditions, fetch)
        return ids

    async def _text_ranked(
        self,
        model: type[Product] | type[KnowledgeChunk],
        tsquery: ColumnElement[Any],
        conditions: list[ColumnElement[bool]],
        fetch: int,
    ) -> list[int]:
        rank = func.ts_rank_cd(model.search_vector, tsquery, 1)
        statement = (
            select(model.id)
            .where(model.search_vector.op("@@")(tsquery), *conditions)
            .order_by(rank.desc(), model.id)
            .limit(fetch)
        )
        return list((await self.session.execute(statement)).scalars())

    async def _product_hits(self, fused: list[tuple[int, float]]) -> list[ProductHit]:
        if not fused:
            return []
        ids = [item for item, _ in fused]
        rows = (await self.session.execute(select(*_HIT_COLUMNS).where(Product.id.in_(ids)))).all()
        by_id = {row.id: row for row in rows}
        return [_product_hit(by_id[item], score) for item, score in fused if item in by_id]


def _ann(
    model: type[Product] | type[KnowledgeChunk],
    base: list[ColumnElement[bool]],
    vector: Vector,
    fetch: int,
    extra: Sequence[InstrumentedAttribute[Any]],
) -> Select[Any]:
    distance = model.embedding.cosine_distance(vector)
    similarity = (1 - distance).label("similarity")
    return select(model.id, *extra, similarity).where(*base).order_by(distance).limit(fetch)


def _exact(
    model: type[Product] | type[KnowledgeChunk],
    base: list[ColumnElement[bool]],
    vector: Vector,
    fetch: int,
    extra: Sequence[InstrumentedAttribute[Any]],
) -> Select[Any]:
    candidates = (
        select(model.id, model.embedding, *extra).where(*base).cte("vector_candidates").prefix_with("MATERIALIZED")
    )
    distance = candidates.c.embedding.cosine_distance(vector)
    carried = [candidates.c[column.key] for column in extra]
    similarity = (1 - distance).label("similarity")
    return select(candidates.c.id, *carried, similarity).order_by(distance, candidates.c.id).limit(fetch)


_HIT_COLUMNS = (
    Product.id,
    Product.sku,
    Product.name,
    Product.price,
    Product.currency,
    Product.stock,
    Product.category,
    Product.description,
)


def _product_hit(row: Row[Any] | Any, score: float) -> ProductHit:
    return ProductHit(
        sku=row.sku,
        name=row.name,
        price=row.price,
        currency=row.currency,
        stock=row.stock,
        category=row.category,
        description=shorten(row.description, DESCRIPTION_CHARS),
        score=round(score, 4),
    )
