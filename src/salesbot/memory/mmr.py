"""Maximal marginal relevance: pick items relevant to a query that do not repeat each other."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# 1.0 ranks by relevance only, 0.0 by novelty only. At 0.5 a near-duplicate of a fact already picked loses to
# a clearly different fact that is somewhat less relevant (at 0.7 a 0.99-similar duplicate still won).
DEFAULT_LAMBDA = 0.5


def _normalised(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def mmr(
    query: NDArray[np.float32],
    candidates: NDArray[np.float32],
    *,
    limit: int,
    lambda_: float = DEFAULT_LAMBDA,
) -> list[int]:
    """Indices of `candidates` (rows) in MMR order: each next pick maximises
    lambda * sim(query, c) - (1 - lambda) * max sim(c, already picked), with cosine similarity."""
    if limit <= 0 or len(candidates) == 0:
        return []
    vectors = _normalised(np.asarray(candidates, dtype=np.float32))
    relevance = vectors @ _normalised(np.asarray(query, dtype=np.float32))
    pairwise = vectors @ vectors.T
    picked: list[int] = []
    left = list(range(len(vectors)))
    while left and len(picked) < limit:
        redundancy = pairwise[np.ix_(left, picked)].max(axis=1) if picked else np.zeros(len(left), np.float32)
        scores = lambda_ * relevance[left] - (1 - lambda_) * redundancy
        best = left[int(np.argmax(scores))]
        picked.append(best)
        left.remove(best)
    return picked
