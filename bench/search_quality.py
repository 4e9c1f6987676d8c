"""Search quality on the demo catalog: the labelled questions of bench/data/search_quality.json through the real
hybrid search (`HybridSearch.search_products`), for each embedder side by side.

Each question is labelled with the categories a right answer may belong to. For every (catalog, embedder) the
catalog is imported through `ingest_product_file` into an empty products table, then each question is searched
(limit 10) and scored: category-correct top-1, hit@3 (a right category among the first three) and MRR (1 / rank
of the first right category within 10). The catalog comes in two versions: the demo file as shipped (about
half the descriptions also in Arabic and Russian) and English-only (those lines removed), which is what most
businesses have.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from salesbot.knowledge.embeddings import Embedder
from salesbot.knowledge.ingest import ingest_product_file
from salesbot.knowledge.search import HybridSearch
from salesbot.knowledge.seed import DEMO_CURRENCY, DEMO_PRODUCTS, write_english_only_catalog

QUALITY_SET = Path(__file__).resolve().parent / "data" / "search_quality.json"
SEARCH_LIMIT = 10
SPLITS = ("dev", "holdout")


@dataclass(frozen=True)
class LabelledQuery:
    lang: str
    kind: str  # "plain" or "paraphrase"
    query: str
    categories: frozenset[str]
    split: str  # "dev" (tuned on) or "holdout" (never tuned on)


def load_quality_set(path: Path = QUALITY_SET) -> list[LabelledQuery]:
    raw = json.loads(path.read_text(encoding="utf-8"))["queries"]
    return [LabelledQuery(q["lang"], q["kind"], q["query"], frozenset(q["categories"]), q["split"]) for q in raw]


def score(ranked_categories: Sequence[str], expected: frozenset[str]) -> tuple[float, float, float]:
    """(top-1 correct, hit@3, reciprocal rank) of one answer."""
    rank = next((position for position, category in enumerate(ranked_categories, 1) if category in expected), None)
    return (
        float(rank == 1),
        float(rank is not None and rank <= 3),
        0.0 if rank is None else 1.0 / rank,
    )


def aggregate(rows: list[tuple[float, float, float]]) -> dict[str, float]:
    return {
        "queries": len(rows),
        "top1": round(statistics.mean(row[0] for row in rows), 3),
        "hit_at_3": round(statistics.mean(row[1] for row in rows), 3),
        "mrr": round(statistics.mean(row[2] for row in rows), 3),
    }


async def evaluate(
    sessions: async_sessionmaker[Any], embedders: Sequence[Embedder], queries: Sequence[LabelledQuery]
) -> dict[str, Any]:
    """Quality per catalog version and embedder: overall, per kind (plain/paraphrase) and per language."""
    with tempfile.TemporaryDirectory(prefix="salesbot-quality-") as folder:
        catalogs = {
            "demo (with AR/RU lines)": DEMO_PRODUCTS,
            "English-only": write_english_only_catalog(Path(folder) / "products-en.csv"),
        }
        results: dict[str, Any] = {}
        for catalog_name, catalog in catalogs.items():
            for embedder in embedders:
                print(f"quality: {catalog_name} with {embedder.name} ...", flush=True)
                async with sessions() as session:
                    await session.execute(text("TRUNCATE products RESTART IDENTITY CASCADE"))
                    await ingest_product_file(session, catalog, embedder, default_currency=DEMO_CURRENCY)
                    await session.commit()
                async with sessions() as session:
                    search = HybridSearch(session, embedder)
                    scored: list[tuple[LabelledQuery, tuple[float, float, float], str]] = []
                    for query in queries:
                        hits = await search.search_products(query.query, limit=SEARCH_LIMIT)
                        first = hits[0].name if hits else ""
                        scored.append((query, score([hit.category for hit in hits], query.categories), first))
                groups: dict[str, Any] = {"all": aggregate([row for _, row, _ in scored])}
                for kind in ("plain", "paraphrase"):
                    groups[kind] = aggregate([row for query, row, _ in scored if query.kind == kind])
                for split in SPLITS:
                    for kind in ("plain", "paraphrase"):
                        rows = [row for query, row, _ in scored if query.split == split and query.kind == kind]
                        if rows:
                            groups[f"{split} {kind}"] = aggregate(rows)
                for lang in sorted({query.lang for query in queries}):
                    for kind in ("plain", "paraphrase"):
                        rows = [row for query, row, _ in scored if query.lang == lang and query.kind == kind]
                        if rows:
                            groups[f"{lang} {kind}"] = aggregate(rows)
                groups["misses"] = [
                    {"query": query.query, "split": query.split, "expected": sorted(query.categories), "first": first}
                    for query, row, first in scored
                    if row[0] == 0.0
                ]
                results.setdefault(catalog_name, {})[embedder.name] = groups
    return results


def print_quality(results: dict[str, Any]) -> None:
    print()
    header = f"{'catalog':<24} {'embedder':<26} {'queries':<22} {'top-1':>6} {'hit@3':>6} {'MRR':>6}"
    print(header)
    print("-" * len(header))
    for catalog, by_embedder in results.items():
        for embedder, groups in by_embedder.items():
            for group in ("plain", "paraphrase", *(f"{s} {k}" for s in SPLITS for k in ("plain", "paraphrase")), "all"):
                values = groups[group]
                label = f"{group} ({values['queries']})"
                print(
                    f"{catalog:<24} {embedder:<26} {label:<22} "
                    f"{values['top1']:>6.3f} {values['hit_at_3']:>6.3f} {values['mrr']:>6.3f}"
                )
