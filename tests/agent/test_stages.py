"""The sales-stage FSM: transitions from DESIGN.md, exit criteria and stage-dependent tools."""

from __future__ import annotations

import pytest

from salesbot.agent.stages import TRANSITIONS, FunnelState, check_transition, path_to, tools_for_stage
from salesbot.models import SalesStage as S

READY = FunnelState(
    need="laptops for 5 new hires",
    shown_skus=frozenset({"HP-250G9-I5"}),
    selected_skus=frozenset({"HP-250G9-I5"}),
    customer_name="John",
    customer_company="Acme",
    quotes=1,
)
EMPTY = FunnelState(None, frozenset(), frozenset(), None, None, 0)

DESIGN_TRANSITIONS = {
    (S.GREETING, S.QUALIFYING),
    (S.QUALIFYING, S.NEEDS_ANALYSIS),
    (S.NEEDS_ANALYSIS, S.SOLUTION),
    (S.NEEDS_ANALYSIS, S.QUALIFYING),
    (S.SOLUTION, S.COMPANY_DETAILS),
    (S.SOLUTION, S.NEEDS_ANALYSIS),
    (S.COMPANY_DETAILS, S.QUOTING),
    (S.COMPANY_DETAILS, S.SOLUTION),
    (S.QUOTING, S.CLOSING),
    (S.QUOTING, S.SOLUTION),
}


def test_transition_table_is_the_one_in_design() -> None:
    table = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert table == DESIGN_TRANSITIONS
    assert TRANSITIONS[S.CLOSING] == frozenset()


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", list(S))
def test_only_design_transitions_are_allowed(source: S, target: S) -> None:
    problem = check_transition(source, target, READY)
    assert (problem is None) == ((source, target) in DESIGN_TRANSITIONS)


def test_refusals_tell_the_model_what_to_do() -> None:
    problem = check_transition(S.GREETING, S.QUOTING, READY)
    assert problem is not None
    assert "Allowed next stages from 'greeting': qualifying" in problem
    closed = check_transition(S.CLOSING, S.SOLUTION, READY)
    assert closed is not None
    assert "final" in closed


@pytest.mark.parametrize(
    ("source", "target", "hint"),
    [
        (S.QUALIFYING, S.NEEDS_ANALYSIS, "reason"),
        (S.NEEDS_ANALYSIS, S.SOLUTION, "search_products"),
        (S.SOLUTION, S.COMPANY_DETAILS, "selected_items"),
        (S.COMPANY_DETAILS, S.QUOTING, "solution"),
        (S.QUOTING, S.CLOSING, "create_quote"),
    ],
)
def test_exit_criteria_are_checked_in_code(source: S, target: S, hint: str) -> None:
    problem = check_transition(source, target, EMPTY)
    assert problem is not None
    assert hint in problem


def test_quoting_needs_name_and_company() -> None:
    selected = FunnelState(None, frozenset(), frozenset({"X-1"}), None, "Acme", 0)
    problem = check_transition(S.COMPANY_DETAILS, S.QUOTING, selected)
    assert problem is not None
    assert "Quoting needs the customer's name:" in problem


def test_stepping_back_needs_nothing() -> None:
    for source, target in [(S.NEEDS_ANALYSIS, S.QUALIFYING), (S.QUOTING, S.SOLUTION), (S.SOLUTION, S.NEEDS_ANALYSIS)]:
        assert check_transition(source, target, EMPTY) is None


def test_tools_per_stage() -> None:
    assert "create_quote" in tools_for_stage(S.QUOTING)
    assert all("create_quote" not in tools_for_stage(stage) for stage in S if stage is not S.QUOTING)
    assert "calculate_financing" not in tools_for_stage(S.GREETING)
    assert "advance_stage" not in tools_for_stage(S.CLOSING)
    for stage in S:
        assert {"search_products", "get_product", "search_knowledge", "request_human"} <= tools_for_stage(stage)


def test_path_to() -> None:
    assert path_to(S.GREETING, S.SOLUTION) == [S.QUALIFYING, S.NEEDS_ANALYSIS, S.SOLUTION]
    assert path_to(S.SOLUTION, S.QUOTING) == [S.COMPANY_DETAILS, S.QUOTING]
    assert path_to(S.CLOSING, S.SOLUTION) == []
