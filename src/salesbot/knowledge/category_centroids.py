"""How well each catalog category as a whole matches a query: the cosine between the query's vector and the
category's centroid (the normalized mean of its products' vectors).

A customer describing a need ("something on each desk to answer customers who call the office") means a kind
of product. One product of another kind can sit closer to that sentence than any product of the kind meant (an
office desk shares its words), but the kind's products taken together sit closer than the other kind's. The
centroid is the category's own description, written by the catalog itself: no list of synonyms to keep up.

Computing centroids reads every embedded product (about 0.1-0.5 s at 100k products), so they are cached per
process, per database and model. The cache is checked on every search against the newest product row (its id
and the transaction that wrote it: an index lookup), so an import or a re-created catalog is seen at once; edits
to older rows move a centroid only a little and are picked up within `CENTROID_TTL_SECONDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import Vector
from salesbot.models import Product

log = get_logger(__name__)

CENTROID_TTL_SECONDS: Final = 300.0


@dataclass(frozen=True)
class _Centroids:
    signature: tuple[int, str] | None
    loaded_at: float
    by_category: dict[str, Vector]


_cache: dict[tuple[str, str], _Centroids] = {}


def clear_cache() -> None:
    _cache.clear()


async def _signature(session: AsyncSession) -> tuple[int, str] | None:
    """The newest product row (id, inserting/updating transaction): changes with every import."""
    row = (await session.execute(text("SELECT id, xmin::text AS xmin FROM products ORDER BY id DESC LIMIT 1"))).first()
    return None if row is None else (int(row.id), str(row.xmin))


async def category_centroids(session: AsyncSession, model: str) -> dict[str, Vector]:
    """Unit-length centroid per category of the active products embedded by `model`."""
    bind = session.get_bind()
    key = (bind.engine.url.render_as_string(hide_password=True), model)
    signature = await _signature(session)
    cached = _cache.get(key)
    now = time.monotonic()
    if cached is not None and cached.signature == signature and now - cached.loaded_at < CENTROID_TTL_SECONDS:
        return cached.by_category
    statement = (
        select(Product.category, func.avg(Product.embedding, type_=Product.embedding.type).label("centroid"))
        .where(Product.active.is_(True), Product.embedding.is_not(None), Product.embedding_model == model)
        .group_by(Product.category)
    )
    started = time.perf_counter()
    by_category: dict[str, Vector] = {}
    for category, centroid in (await session.execute(statement)).all():
        vector = np.asarray(centroid, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            by_category[category] = vector / norm
    _cache[key] = _Centroids(signature, now, by_category)
    log.debug(
        "knowledge.category_centroids_loaded",
        categories=len(by_category),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return by_category


def category_similarity(vector: Vector, centroids: dict[str, Vector]) -> dict[str, float]:
    """Cosine of the query vector with each category's (unit-length) centroid."""
    norm = float(np.linalg.norm(vector))
    if norm == 0:
        return dict.fromkeys(centroids, 0.0)
    return {category: float(np.dot(vector, centroid)) / norm for category, centroid in centroids.items()}
