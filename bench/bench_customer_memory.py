"""Customer memory: what recall and remember add to a turn, and whether it depends on how many customers exist.

    .venv/bin/python bench/bench_customer_memory.py
    .venv/bin/python bench/bench_customer_memory.py --facts 200 --customers 10 2000

A throwaway embedded PostgreSQL, migrated. For each total size, `customers` customers get `facts` facts each
(filler vectors); one measured customer gets real facts (demo catalog names, offline embedder). Then, on that
customer: `recall` (embed the query, exact cosine over the customer's rows, MMR) and `remember` of a typical
search turn (5 products seen before + the stage: dedup, no re-embedding), p50/p95 in ms. The ratio of the
largest to the smallest table shows whether the cost follows the table or the customer. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

from salesbot.db import create_engine, create_sessionmaker
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge.embeddings import OfflineEmbedder
from salesbot.knowledge.seed import DEMO_PRODUCTS
from salesbot.memory.service import recall, remember
from salesbot.memory.types import FactDraft, MemoryKind
from salesbot.migrate import upgrade
from salesbot.models import Channel, Customer, CustomerMemory

DATABASE = "salesbot_bench_memory"
QUERIES = ("do you still have that laser printer?", "the laptop from last time", "my quote", "ergonomic chair")


def _product_facts(limit: int) -> list[FactDraft]:
    with DEMO_PRODUCTS.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        FactDraft(MemoryKind.PRODUCT, row["sku"], f"Asked about {row['name']} (SKU {row['sku']}, {row['category']})")
        for row in rows[:limit]
    ]


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


async def measure_size(url: str, customers: int, facts: int, rounds: int) -> dict[str, float]:
    engine = create_engine(url, pool_size=2)
    sessions = create_sessionmaker(engine)
    embedder = OfflineEmbedder(1024)
    rng = np.random.default_rng(20261130)
    async with sessions() as session:
        await session.execute(text("TRUNCATE customers RESTART IDENTITY CASCADE"))
        ids = (
            await session.scalars(
                insert(Customer).returning(Customer.id),
                [{"channel": Channel.CONSOLE, "chat_id": f"bench-{n}"} for n in range(customers)],
            )
        ).all()
        for start in range(0, len(ids), 50):
            rows = []
            for customer_id in ids[start : start + 50]:
                vectors = rng.standard_normal((facts, 1024)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                rows += [
                    {
                        "customer_id": customer_id,
                        "kind": "product",
                        "key": f"SKU-{n}",
                        "text": f"Asked about product {n}",
                        "embedding": vectors[n].tolist(),
                        "embedding_model": embedder.name,
                    }
                    for n in range(facts)
                ]
            await session.execute(insert(CustomerMemory), rows)
        measured = ids[len(ids) // 2]
        await session.execute(text("DELETE FROM customer_memories WHERE customer_id = :id"), {"id": measured})
        real = _product_facts(facts)
        await remember(session, embedder, customer_id=measured, conversation_id=None, message_id=None, facts=real)
        await session.commit()
        await session.execute(text("ANALYZE customer_memories"))
        turn = [*real[:5], FactDraft(MemoryKind.STAGE, "stage", "The last conversation reached the solution stage")]
        recall_times: list[float] = []
        remember_times: list[float] = []
        for n in range(rounds):
            started = time.perf_counter()
            await recall(session, measured, QUERIES[n % len(QUERIES)], 4, embedder=embedder)
            recall_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            await remember(session, embedder, customer_id=measured, conversation_id=None, message_id=None, facts=turn)
            remember_times.append(time.perf_counter() - started)
            await session.rollback()
    await engine.dispose()
    recall_p50, recall_p95 = _ms(recall_times)
    remember_p50, remember_p95 = _ms(remember_times)
    return {
        "rows": customers * facts,
        "recall_p50_ms": recall_p50,
        "recall_p95_ms": recall_p95,
        "remember_p50_ms": remember_p50,
        "remember_p95_ms": remember_p95,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--facts", type=int, default=50, help="facts per customer")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="salesbot-bench-")), tuned_for_tests=True)
    server.start()
    results: list[dict[str, float]] = []
    try:
        server.create_database(DATABASE)
        url = server.url(DATABASE)
        upgrade(url)
        for customers in args.customers:
            results.append(asyncio.run(measure_size(url, customers, args.facts, args.rounds)))
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    print(f"{'rows':>8}  {'recall p50':>10}  {'recall p95':>10}  {'remember p50':>12}  {'remember p95':>12}")
    for row in results:
        print(
            f"{row['rows']:>8.0f}  {row['recall_p50_ms']:>10.2f}  {row['recall_p95_ms']:>10.2f}  "
            f"{row['remember_p50_ms']:>12.2f}  {row['remember_p95_ms']:>12.2f}"
        )
    first, last = results[0], results[-1]
    print(
        f"\nrecall p50 at {last['rows']:.0f} rows / at {first['rows']:.0f} rows: "
        f"{last['recall_p50_ms'] / first['recall_p50_ms']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
