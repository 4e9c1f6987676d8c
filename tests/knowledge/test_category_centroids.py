"""Category centroids: the mean vector of each category's embedded active products, cached per process and
refreshed when the catalog changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.category_centroids import category_centroids, category_similarity
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.ingest import ingest_product_file
from salesbot.models import Product

HEADER = "sku,name,description,category,price,currency,stock,brand\n"
ROWS = [
    "LAP-1,ThinkPad E14,14-inch business laptop,Laptops,3299,AED,7,Lenovo\n",
    "LAP-2,HP ProBook 450,15-inch business laptop,Laptops,3199,AED,3,HP\n",
    "LAP-3,MacBook Air 13,light laptop for travel,Laptops,4299,AED,0,Apple\n",
    "MON-1,Dell P2423D,24-inch QHD monitor,Monitors,1049,AED,5,Dell\n",
    "MON-2,LG 27UP850N,27-inch 4K monitor,Monitors,1599,AED,2,LG\n",
]
SHREDDER = "SHR-1,Fellowes 79Ci,cross-cut paper shredder,Office Equipment,899,AED,4,Fellowes\n"


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


async def stored_vectors(session: AsyncSession) -> dict[str, list[np.ndarray]]:
    rows = (await session.execute(select(Product.category, Product.embedding).where(Product.active))).all()
    by_category: dict[str, list[np.ndarray]] = {}
    for category, embedding in rows:
        by_category.setdefault(category, []).append(np.asarray(embedding, dtype=np.float32))
    return by_category


async def test_centroids_are_the_normalized_mean_of_each_categorys_active_products(
    db_session: AsyncSession, offline_embedder: OfflineEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv", ROWS), offline_embedder)
    await db_session.execute(update(Product).where(Product.sku == "LAP-3").values(active=False))
    await db_session.flush()

    centroids = await category_centroids(db_session, offline_embedder.name)

    assert sorted(centroids) == ["Laptops", "Monitors"]
    for category, vectors in (await stored_vectors(db_session)).items():
        mean = np.mean(vectors, axis=0)
        assert np.allclose(centroids[category], mean / np.linalg.norm(mean), atol=1e-5), category
        assert np.isclose(np.linalg.norm(centroids[category]), 1.0, atol=1e-5)
    assert await category_centroids(db_session, "another-model") == {}


async def test_an_import_is_seen_at_once(
    db_session: AsyncSession, offline_embedder: OfflineEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv", ROWS), offline_embedder)
    assert "Office Equipment" not in await category_centroids(db_session, offline_embedder.name)

    await ingest_product_file(db_session, write_csv(tmp_path / "more.csv", [*ROWS, SHREDDER]), offline_embedder)

    centroids = await category_centroids(db_session, offline_embedder.name)
    assert sorted(centroids) == ["Laptops", "Monitors", "Office Equipment"]
    shredder = (await stored_vectors(db_session))["Office Equipment"][0]
    assert np.allclose(centroids["Office Equipment"], shredder / np.linalg.norm(shredder), atol=1e-5)


async def test_category_similarity_is_the_cosine_with_each_centroid(
    db_session: AsyncSession, offline_embedder: OfflineEmbedder, tmp_path: Path
) -> None:
    await ingest_product_file(db_session, write_csv(tmp_path / "p.csv", ROWS), offline_embedder)
    centroids = await category_centroids(db_session, offline_embedder.name)
    query = await offline_embedder.embed_query("business laptop")

    match = category_similarity(2 * query, centroids)  # the query's length does not matter

    assert match["Laptops"] > match["Monitors"]
    assert np.isclose(match["Laptops"], float(np.dot(query / np.linalg.norm(query), centroids["Laptops"])))
    assert category_similarity(np.zeros_like(query), centroids) == {"Laptops": 0.0, "Monitors": 0.0}
