"""Search benchmark: quality on the demo catalog per embedder, then N catalog products in pgvector: HNSW build
time, top-10 latency, recall, hybrid latency.

    .venv/bin/python bench/bench_search.py                    # quality + 100k products, multilingual USE
    .venv/bin/python bench/bench_search.py --quality-only     # the labelled questions only (about a minute)
    .venv/bin/python bench/bench_search.py --model offline --skip-quality
    .venv/bin/python bench/bench_search.py --products 20000 --queries 100
    .venv/bin/python bench/bench_search.py --model BAAI/bge-m3 --model-path /models/bge-m3
    .venv/bin/python bench/bench_search.py --database-url postgresql+asyncpg://...   # an existing (scratch!) DB
    .venv/bin/python bench/bench_search.py --embed-only       # only embed the 100k products into the cache

Product vectors are cached per chunk of 2,048 documents in /tmp/salesbot-bench-embeddings (`--embedding-cache`,
'' to disable): embedding 100k generated documents with USE takes about 8 minutes on an idle core and far longer
on a busy machine, so an interrupted run resumes and a smaller `--products` reuses the first chunks.

Quality (bench/search_quality.py): the labelled EN/AR/RU questions of bench/data/search_quality.json, plain
and paraphrased, in a dev split (tuned on) and a held-out split (never tuned on), through the real hybrid
search on the demo catalog with and without its AR/RU lines, for the multilingual USE and the n-gram embedder
side by side (BGE-M3 too when `--bge-m3-path` points at a local copy: its weights cannot be downloaded on
machines without Hugging Face access).

Products are variants of the demo catalog (real brands, categories and price levels; model numbers, specs
and prices varied), embedded with `--model` (default: the multilingual USE). Loading uses
COPY with the HNSW index dropped; the index is then built once and timed. Measured:

- top-10 nearest neighbours through the HNSW index (pgvector's default `hnsw.ef_search`=40 and higher values),
  p50/p95 latency and recall@10 against an exact scan (the same query with index scans disabled);
- filtered top-10 through salesbot's filtered strategy (`HybridSearch.nearest_product_ids`: over-fetch and
  exact fallback on pgvector < 0.8, iterative scans on >= 0.8), for a broad and a selective filter, with
  recall against the exact filtered answer and how often all 10 rows came back;
- full hybrid search (`HybridSearch.search_products`: query embedding, HNSW + full-text, RRF, row fetch).

Writes bench/results/search.json (and search_quality.json) and prints tables. A benchmark, not a test:
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector
from search_quality import QUALITY_SET, SEARCH_LIMIT, evaluate, load_quality_set, print_quality

from salesbot.db import create_engine, create_sessionmaker
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge.documents import content_hash, product_document
from salesbot.knowledge.embeddings import (
    USE_MODEL,
    Embedder,
    FastEmbedEmbedder,
    OfflineEmbedder,
    UniversalSentenceEncoder,
)
from salesbot.knowledge.search import HybridSearch
from salesbot.knowledge.seed import DEMO_PRODUCTS
from salesbot.knowledge.types import ProductFilters
from salesbot.knowledge.vector_index import PRODUCTS, create_vector_index, pgvector_version, set_dimension
from salesbot.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results" / "search.json"
QUALITY_RESULTS = RESULTS.with_name("search_quality.json")
DATABASE = "salesbot_bench"
VARIANTS = {
    "Laptops": ["8 GB / 256 GB", "16 GB / 512 GB", "32 GB / 1 TB", "Arabic keyboard", "3-year on-site warranty"],
    "Desktops": ["with 24-inch monitor", "8 GB / 256 GB", "16 GB / 1 TB", "Windows 11 Pro", "3-year warranty"],
    "Monitors": ["with height-adjustable stand", "2-pack", "black", "white", "refurbished grade A"],
    "Printers": ["with extra toner", "network bundle", "starter kit", "refurbished grade A"],
    "Toner & Ink": ["2-pack", "value pack", "high yield", "office box"],
}
GENERIC_VARIANTS = ["black", "white", "grey", "2-pack", "bundle", "V2", "Pro", "Plus", "Gen 2", "refurbished"]
STOCK_OUT_SHARE = 0.15
EPSILON = 0.01
CACHE_CHUNK = 2048


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    description: str
    category: str
    brand: str
    price: Decimal
    stock: int


def _demo_rows() -> list[dict[str, str]]:
    with DEMO_PRODUCTS.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def generate_products(count: int, seed: int) -> list[Product]:
    """Variants of the demo catalog: new model numbers, a spec/pack variant, prices within ±30%."""
    rng = random.Random(seed)
    base = _demo_rows()

    def new_digits(text: str) -> str:
        return re.sub(r"\d", lambda _: str(rng.randint(0, 9)), text)

    products = []
    for number in range(count):
        row = base[number % len(base)]
        variant = rng.choice(VARIANTS.get(row["category"], GENERIC_VARIANTS))
        name = f"{new_digits(row['name'])} {variant}"[:300]
        factor = Decimal(str(round(rng.uniform(0.7, 1.3), 2)))
        price = (Decimal(row["price"]) * factor).quantize(Decimal("1")) - Decimal("0.01")
        stock = 0 if rng.random() < STOCK_OUT_SHARE else rng.randint(1, 200)
        description = f"{new_digits(row['description'])} Variant: {variant}."
        products.append(Product(f"B{number:07d}", name, description, row["category"], row["brand"], price, stock))
    return products


def generate_queries(products: list[Product], count: int, seed: int) -> list[str]:
    """Customer-style queries: brand + product words from names, and the labeled EN/AR/RU demo questions."""
    rng = random.Random(seed + 1)
    labeled = [
        "HP LaserJet Pro M404dn",
        "MacBook Air M3 15 inch",
        "wireless mouse MX Master",
        "APC smart UPS 1500VA",
        "synology nas with 4 bays",
        "toner for HP M404",
        "electric standing desk",
        "Fortinet firewall",
        "طابعة ليزر HP",
        "جهاز بصمة للحضور والانصراف",
        "بروجكتر قصير المدى",
        "آلة تمزيق الورق",
        "ноутбук Lenovo ThinkPad",
        "монитор Dell 27 дюймов 4K",
        "лазерный принтер Brother",
        "ИБП APC",
    ]
    queries = list(labeled)
    while len(queries) < count:
        words = rng.choice(products).name.replace("(", " ").replace(")", " ").split()
        queries.append(" ".join(words[: rng.randint(2, 4)]))
    return queries[:count]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def recall(found: list[tuple[int, float]], exact: list[tuple[int, float]]) -> tuple[float, float]:
    """(recall@10 by id, epsilon recall@10): the second counts a returned row as correct when its distance is
    within 1% of the exact 10th distance (ann-benchmarks' "epsilon 0.01" recall). Variants of one model sit at
    nearly equal distances, so a different but equally near row is as good an answer as the exact scan's pick."""
    if not exact:
        return 1.0, 1.0
    by_id = len({item for item, _ in found} & {item for item, _ in exact}) / len(exact)
    cutoff = exact[-1][1] * (1 + EPSILON) + 1e-9
    within = min(len(exact), sum(1 for _, distance in found if distance <= cutoff)) / len(exact)
    return by_id, within


def mean_recall(values: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "recall_at_10": round(statistics.mean(value[0] for value in values), 4),
        "recall_at_10_epsilon_0.01": round(statistics.mean(value[1] for value in values), 4),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 0.5), 2), "p95_ms": round(percentile(values, 0.95), 2)}


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await call()
    return result, (time.perf_counter() - started) * 1000


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def load(connection: asyncpg.Connection, products: list[Product], vectors: np.ndarray, model: str) -> float:
    await connection.execute("TRUNCATE products RESTART IDENTITY CASCADE")
    await connection.execute(f"DROP INDEX IF EXISTS {PRODUCTS.index}")
    records = [
        (
            product.sku,
            product.name,
            product.description,
            product.category,
            product.price,
            "AED",
            product.stock,
            json.dumps({"brand": product.brand}),
            True,
            vectors[position],
            model,
            content_hash(
                product_document(
                    sku=product.sku,
                    name=product.name,
                    category=product.category,
                    description=product.description,
                    attributes={"brand": product.brand},
                )
            ),
        )
        for position, product in enumerate(products)
    ]
    started = time.perf_counter()
    await connection.copy_records_to_table(
        "products",
        records=records,
        columns=[
            "sku",
            "name",
            "description",
            "category",
            "price",
            "currency",
            "stock",
            "attributes",
            "active",
            "embedding",
            "embedding_model",
            "content_hash",
        ],
    )
    await connection.execute("ANALYZE products")
    return time.perf_counter() - started


async def embed_documents_cached(
    embedder: Embedder, documents: list[str], cache_dir: Path | None
) -> tuple[np.ndarray, float, int]:
    """(vectors, seconds the embedding took, documents that came from the cache). Embedding 100k documents with
    USE takes about 8 minutes on an idle core (much longer on a busy machine), so the vectors are kept in
    `cache_dir`, one file per chunk of `CACHE_CHUNK` documents under a key of the model and the chunk's exact
    texts: a change to either (or to `product_document`) embeds that chunk again, an interrupted run resumes,
    and a smaller `--products` reuses the first chunks (products are generated in a fixed order). The seconds
    of a cached chunk are those of the run that embedded it."""
    parts: list[np.ndarray] = []
    seconds = 0.0
    cached = 0
    for start in range(0, len(documents), CACHE_CHUNK):
        chunk = documents[start : start + CACHE_CHUNK]
        digest = hashlib.sha256(f"{embedder.name}/{embedder.dim}".encode())
        for document in chunk:
            digest.update(document.encode("utf-8") + b"\0")
        name = f"{embedder.name.replace('/', '_')}-{len(chunk)}-{digest.hexdigest()[:20]}.npz"
        path = cache_dir / name if cache_dir is not None else None
        if path is not None and path.exists():
            with np.load(path) as stored:
                parts.append(stored["vectors"])
                seconds += float(stored["seconds"])
            cached += len(chunk)
            continue
        started = time.perf_counter()
        vectors = await embedder.embed_documents(chunk)
        elapsed = time.perf_counter() - started
        seconds += elapsed
        parts.append(vectors)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path.with_suffix(".tmp.npz"), vectors=vectors, seconds=np.float64(elapsed))
            path.with_suffix(".tmp.npz").replace(path)
        print(f"  embedded {start + len(chunk):,} / {len(documents):,}", flush=True)
    return np.concatenate(parts), seconds, cached


def build_embedder(args: argparse.Namespace) -> Embedder:
    if args.model == "offline":
        return OfflineEmbedder(args.dim)
    if args.model == USE_MODEL:
        return UniversalSentenceEncoder(batch_size=args.batch_size)
    return FastEmbedEmbedder(args.model, model_path=args.model_path, batch_size=args.batch_size)


async def measure_quality(args: argparse.Namespace, url: str) -> dict[str, Any]:
    embedders: list[Embedder] = [UniversalSentenceEncoder(batch_size=args.batch_size), OfflineEmbedder(args.dim)]
    if args.bge_m3_path:
        embedders.append(FastEmbedEmbedder("BAAI/bge-m3", model_path=args.bge_m3_path, batch_size=args.batch_size))
    engine = create_engine(url, pool_size=2)
    try:
        results = await evaluate(create_sessionmaker(engine), embedders, load_quality_set())
    finally:
        await engine.dispose()
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quality_set": f"bench/data/{QUALITY_SET.name}",
        "search": f"HybridSearch.search_products(limit={SEARCH_LIMIT}), category of each hit",
        "bge_m3": "measured" if args.bge_m3_path else "not measured: its weights cannot be downloaded here",
        "results": results,
    }


async def measure(args: argparse.Namespace, embedder: Embedder, url: str) -> dict[str, Any]:
    print(f"generating {args.products:,} products ...", flush=True)
    products = generate_products(args.products, args.seed)
    queries = generate_queries(products, args.queries, args.seed)

    print(f"embedding with {embedder.name} ...", flush=True)
    documents = [
        product_document(
            sku=p.sku, name=p.name, category=p.category, description=p.description, attributes={"brand": p.brand}
        )
        for p in products
    ]
    vectors, embed_seconds, cached = await embed_documents_cached(embedder, documents, args.embedding_cache)
    if args.embed_only:
        return {"products": len(products), "embedded_seconds": round(embed_seconds, 1), "from_cache": cached}
    query_vectors = []
    query_embed_ms = []
    for query in queries:
        vector, elapsed = await timed(partial(embedder.embed_query, query))
        query_vectors.append(vector)
        query_embed_ms.append(elapsed)

    engine = create_engine(url, pool_size=2)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        await set_dimension(session, PRODUCTS, embedder.dim)  # a model of another dimension than 1024
        await session.commit()
    connection = await asyncpg.connect(asyncpg_dsn(url))
    await register_vector(connection)
    print("loading (COPY) ...", flush=True)
    load_seconds = await load(connection, products, vectors, embedder.name)

    print("building the HNSW index ...", flush=True)
    async with sessions() as session:
        await session.execute(text_sql(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'"))
        await session.execute(text_sql("SET max_parallel_maintenance_workers = 2"))
        started = time.perf_counter()
        if (args.m, args.ef_construction) == (PRODUCTS.m, PRODUCTS.ef_construction):  # the migrations' index
            await create_vector_index(session, PRODUCTS)
        else:
            await session.execute(
                text_sql(
                    f"CREATE INDEX {PRODUCTS.index} ON products USING hnsw (embedding vector_cosine_ops) "
                    f"WITH (m = {int(args.m)}, ef_construction = {int(args.ef_construction)})"
                )
            )
        await session.commit()
        build_seconds = time.perf_counter() - started
        version = await pgvector_version(session)
    size = await connection.fetchval(f"SELECT pg_relation_size('{PRODUCTS.index}')")

    print("querying ...", flush=True)
    ann_sql = "SELECT id, embedding <=> $1 AS distance FROM products ORDER BY embedding <=> $1 LIMIT 10"
    # The exact answer: a MATERIALIZED CTE cannot be served by the index. (Not `enable_indexscan = off`: a
    # prepared statement's cached generic plan would keep the sequential scan for the HNSW runs too.)
    exact_sql = (
        "WITH c AS MATERIALIZED (SELECT id, embedding FROM products) "
        "SELECT id, embedding <=> $1 AS distance FROM c ORDER BY embedding <=> $1 LIMIT 10"
    )
    exact_ms: list[float] = []
    truth: list[list[tuple[int, float]]] = []
    for vector in query_vectors:
        rows, elapsed = await timed(partial(connection.fetch, exact_sql, vector))
        truth.append([(row["id"], row["distance"]) for row in rows])
        exact_ms.append(elapsed)
    ann: dict[str, Any] = {}
    for ef_search in args.ef_search:
        latencies: list[float] = []
        recalls: list[tuple[float, float]] = []
        async with connection.transaction():
            await connection.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
            for vector, expected in zip(query_vectors, truth, strict=True):
                rows, elapsed = await timed(partial(connection.fetch, ann_sql, vector))
                latencies.append(elapsed)
                recalls.append(recall([(row["id"], row["distance"]) for row in rows], expected))
        ann[str(ef_search)] = {**summary(latencies), **mean_recall(recalls)}

    prices = sorted(p.price for p in products)
    median = prices[len(prices) // 2]
    biggest = max({p.category for p in products}, key=lambda c: sum(1 for p in products if p.category == c))
    in_category = sorted(p.price for p in products if p.category == biggest)
    low = in_category[len(in_category) // 3]
    high = in_category[len(in_category) // 3 + max(10, len(in_category) // 100)]
    filters = {
        "broad (in stock, price <= median)": ProductFilters(in_stock_only=True, max_price=median),
        f"selective ({biggest}, {low}..{high} AED)": ProductFilters(category=biggest, min_price=low, max_price=high),
    }
    filtered: dict[str, Any] = {}
    async with sessions() as session:
        search = HybridSearch(session, embedder)
        for label, product_filter in filters.items():
            matching = sum(
                1
                for p in products
                if (product_filter.max_price is None or p.price <= product_filter.max_price)
                and (product_filter.min_price is None or p.price >= product_filter.min_price)
                and (not product_filter.in_stock_only or p.stock > 0)
                and (product_filter.category is None or p.category == product_filter.category)
            )
            latencies, filtered_recalls, complete = [], [], 0
            for vector in query_vectors:
                ids, elapsed = await timed(partial(search.nearest_product_ids, vector, filters=product_filter, k=10))
                latencies.append(elapsed)
                found = await connection.fetch(
                    "SELECT id, embedding <=> $1 AS distance FROM products WHERE id = ANY($2::bigint[])", vector, ids
                )
                exact = await exact_filtered(connection, vector, product_filter)
                filtered_recalls.append(recall([(row["id"], row["distance"]) for row in found], exact))
                complete += len(ids) == min(10, matching)
            filtered[label] = {
                "matching_rows": matching,
                "selectivity": round(matching / len(products), 4),
                **summary(latencies),
                **mean_recall(filtered_recalls),
                "complete_results": f"{complete}/{len(query_vectors)}",
            }
        hybrid: dict[str, Any] = {}
        hybrid_filters: dict[str, ProductFilters | None] = {"unfiltered": None, **filters}
        for label, hybrid_filter in hybrid_filters.items():
            latencies = []
            for query in queries:
                _, elapsed = await timed(partial(search.search_products, query, filters=hybrid_filter, limit=10))
                latencies.append(elapsed)
            hybrid[label] = summary(latencies)
    await engine.dispose()
    await connection.close()

    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "pgvector": ".".join(map(str, version)),
        "products": len(products),
        "queries": len(queries),
        "model": embedder.name,
        "dim": embedder.dim,
        "embed_documents_seconds": round(embed_seconds, 1),
        "embeddings_from_cache": cached,
        "embed_query": summary(query_embed_ms),
        "load_copy_seconds": round(load_seconds, 1),
        "index": {
            "build_seconds": round(build_seconds, 1),
            "size_mb": round(size / 2**20, 1),
            "m": args.m,
            "ef_construction": args.ef_construction,
        },
        "exact_top10": summary(exact_ms),
        "hnsw_top10": ann,
        "filtered_top10": filtered,
        "hybrid_search": hybrid,
    }


def text_sql(statement: str) -> Any:
    from sqlalchemy import text

    return text(statement)


async def exact_filtered(
    connection: asyncpg.Connection, vector: np.ndarray, product_filter: ProductFilters
) -> list[tuple[int, float]]:
    conditions = ["active", "embedding IS NOT NULL"]
    params: list[Any] = [vector]
    if product_filter.max_price is not None:
        params.append(product_filter.max_price)
        conditions.append(f"price <= ${len(params)}")
    if product_filter.min_price is not None:
        params.append(product_filter.min_price)
        conditions.append(f"price >= ${len(params)}")
    if product_filter.in_stock_only:
        conditions.append("stock > 0")
    if product_filter.category:
        params.append(product_filter.category)
        conditions.append(f"category = ${len(params)}")
    sql = (
        f"WITH c AS MATERIALIZED (SELECT id, embedding FROM products WHERE {' AND '.join(conditions)}) "  # noqa: S608
        "SELECT id, embedding <=> $1 AS distance FROM c ORDER BY embedding <=> $1 LIMIT 10"
    )
    return [(row["id"], row["distance"]) for row in await connection.fetch(sql, *params)]


def print_table(result: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    index = result["index"]
    rows.append(
        (
            f"HNSW index build (m={index['m']}, ef_construction={index['ef_construction']})",
            f"{index['build_seconds']} s",
            "",
            "",
        )
    )
    rows.append(
        (
            "exact top-10 (sequential scan)",
            f"{result['exact_top10']['p50_ms']}",
            f"{result['exact_top10']['p95_ms']}",
            "1 / 1",
        )
    )
    for ef, values in result["hnsw_top10"].items():
        rows.append((f"HNSW top-10, ef_search={ef}", f"{values['p50_ms']}", f"{values['p95_ms']}", _recalls(values)))
    for label, values in result["filtered_top10"].items():
        rows.append(
            (
                f"filtered top-10, {label} [{values['selectivity']:.2%} rows, complete {values['complete_results']}]",
                f"{values['p50_ms']}",
                f"{values['p95_ms']}",
                _recalls(values),
            )
        )
    for label, values in result["hybrid_search"].items():
        rows.append((f"hybrid search_products(limit=10), {label}", f"{values['p50_ms']}", f"{values['p95_ms']}", ""))
    rows.append(("query embedding", f"{result['embed_query']['p50_ms']}", f"{result['embed_query']['p95_ms']}", ""))
    width = max(len(row[0]) for row in rows)
    print()
    print(
        f"{result['products']:,} products, {result['model']} ({result['dim']} dims), pgvector {result['pgvector']}, "
        f"{result['machine']['cpus']} CPUs, {result['queries']} queries; load {result['load_copy_seconds']} s, "
        f"embed {result['embed_documents_seconds']} s, index {result['index']['size_mb']} MB"
    )
    print(f"{'measure'.ljust(width)}  {'p50 ms':>9}  {'p95 ms':>9}  {'recall@10 (id / eps 0.01)':>26}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 9}  {'-' * 26}")
    for name, p50, p95, recalls in rows:
        print(f"{name.ljust(width)}  {p50:>9}  {p95:>9}  {recalls:>26}")


def _recalls(values: dict[str, Any]) -> str:
    return f"{values['recall_at_10']:.3f} / {values['recall_at_10_epsilon_0.01']:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--model", default=USE_MODEL, help=f"{USE_MODEL}, offline, or a fastembed model (e.g. BAAI/bge-m3)"
    )
    parser.add_argument("--model-path", default="", help="local folder of the fastembed model")
    parser.add_argument("--bge-m3-path", default="", help="local copy of BAAI/bge-m3: adds it to the quality table")
    parser.add_argument("--quality-only", action="store_true", help="only the labelled questions on the demo catalog")
    parser.add_argument("--skip-quality", action="store_true", help="only the 100k-product measurements")
    parser.add_argument("--dim", type=int, default=1024, help="dimension of the offline embedder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200])
    parser.add_argument("--m", type=int, default=PRODUCTS.m, help=f"HNSW m (the migrations' index: {PRODUCTS.m})")
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=PRODUCTS.ef_construction,
        help=f"HNSW ef_construction (the migrations' index: {PRODUCTS.ef_construction})",
    )
    parser.add_argument("--maintenance-work-mem", default="2GB", help="for the index build")
    parser.add_argument(
        "--embedding-cache",
        type=lambda value: Path(value) if value else None,
        default=Path(tempfile.gettempdir()) / "salesbot-bench-embeddings",
        help="folder keeping the products' vectors across runs ('' to embed every time)",
    )
    parser.add_argument(
        "--embed-only", action="store_true", help="only fill the embedding cache (resumable; no database)"
    )
    parser.add_argument("--database-url", default="", help="a scratch database (its products table is replaced)")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    embedder = build_embedder(args)
    if args.embed_only:
        print(asyncio.run(measure(args, embedder, "")))
        return 0
    server: EmbeddedPostgres | None = None
    url = args.database_url
    if not url:  # a throwaway cluster (about 2.5 GB at 100k products), removed afterwards
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="salesbot-bench-")), tuned_for_tests=True)
        server.start()
        server.create_database(DATABASE)
        url = server.url(DATABASE)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(url)
        if not args.skip_quality:
            quality = asyncio.run(measure_quality(args, url))
            QUALITY_RESULTS.write_text(json.dumps(quality, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print_quality(quality["results"])
            print(f"\nwritten to {QUALITY_RESULTS}")
        if not args.quality_only:
            result = asyncio.run(measure(args, embedder, url))
            args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print_table(result)
            print(f"\nwritten to {args.output}")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
