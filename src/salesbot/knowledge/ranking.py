"""Ranking of search candidates without the database: reciprocal rank fusion of the vector and full-text branches,
and the vector branch's category consensus."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

RRF_K = 60
# Category consensus in the vector branch (tuned on bench/data/search_quality.json): a candidate's score is its
# cosine similarity + CONSENSUS_WEIGHT x the mean similarity of its category's best CONSENSUS_TOP candidates.
CONSENSUS_WEIGHT = 0.25
CONSENSUS_TOP = 5


def reciprocal_rank_fusion(*rankings: Sequence[int], k: int = RRF_K) -> list[tuple[int, float]]:
    """Ids ordered by sum(1 / (k + rank)); the score is normalized so first in every ranking = 1.0."""
    scores: dict[int, float] = defaultdict(float)
    best_rank: dict[int, int] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    ceiling = len(rankings) / (k + 1)
    ordered = sorted(scores, key=lambda item: (-scores[item], best_rank[item]))
    return [(item, scores[item] / ceiling) for item in ordered]


def category_consensus(nearest: Sequence[Row[Any]]) -> list[int]:
    """The vector branch's candidates (id, category, similarity; nearest first) re-ranked by their similarity plus
    how well their category as a whole matches (the mean of its best `CONSENSUS_TOP` candidates): a customer
    describing a need ("something portable to work on while travelling") means a kind of product, and one
    lookalike of another kind (a portable SSD) should not outrank several products of the kind meant."""
    if len(nearest) < 2:
        return [row.id for row in nearest]
    by_category: dict[str, list[float]] = defaultdict(list)
    for row in nearest:
        by_category[row.category].append(float(row.similarity))
    vote = {
        category: sum(sorted(values, reverse=True)[:CONSENSUS_TOP]) / CONSENSUS_TOP
        for category, values in by_category.items()
    }
    scores = {row.id: float(row.similarity) + CONSENSUS_WEIGHT * vote[row.category] for row in nearest}
    position = {row.id: rank for rank, row in enumerate(nearest)}
    return sorted(scores, key=lambda item: (-scores[item], position[item]))
