"""Ranking without the database: reciprocal rank fusion and the vector branch's category consensus."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from salesbot.knowledge.ranking import CONSENSUS_WEIGHT, category_consensus, reciprocal_rank_fusion


class Candidate(NamedTuple):
    """A row of the vector branch's scan: id, category, similarity."""

    id: int
    category: str
    similarity: float


def _consensus(*rows: Candidate) -> list[int]:
    nearest: list[Any] = list(rows)
    return category_consensus(nearest)


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([1, 2, 3], [3, 1, 4])
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx((1 / 61 + 1 / 62) / (2 / 61))
    item, score = reciprocal_rank_fusion([7], [7])[0]
    assert item == 7
    assert score == pytest.approx(1.0)
    assert reciprocal_rank_fusion([], []) == []


def test_several_products_of_one_kind_outrank_a_single_lookalike_of_another() -> None:
    # "Something portable to work on while travelling": a portable SSD is nearest, but the laptops as a kind
    # match better.
    ranked = _consensus(
        Candidate(1, "Storage", 0.80),
        Candidate(2, "Laptops", 0.78),
        Candidate(3, "Laptops", 0.77),
        Candidate(4, "Laptops", 0.76),
        Candidate(5, "Laptops", 0.75),
    )
    assert ranked == [2, 3, 4, 5, 1]


def test_a_clear_nearest_product_keeps_its_place() -> None:
    # The vote moves a score by at most CONSENSUS_WEIGHT x a category's mean: a lead larger than that stands.
    lead = CONSENSUS_WEIGHT + 0.05
    ranked = _consensus(
        Candidate(1, "Storage", 0.70 + lead),
        Candidate(2, "Laptops", 0.70),
        Candidate(3, "Laptops", 0.70),
        Candidate(4, "Laptops", 0.70),
        Candidate(5, "Laptops", 0.70),
        Candidate(6, "Laptops", 0.70),
    )
    assert ranked[0] == 1
    assert ranked[1:] == [2, 3, 4, 5, 6]  # equal scores keep the scan's order


def test_consensus_of_fewer_than_two_candidates_is_the_scan() -> None:
    assert _consensus() == []
    assert _consensus(Candidate(9, "Printers", 0.5)) == [9]
