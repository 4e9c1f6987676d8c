"""The sales funnel as a finite-state machine (DESIGN.md): transitions and exit criteria are code, not prompt.

The model proposes a move with the `advance_stage` tool; `check_transition` decides. A refused move leaves the
stored stage untouched and tells the model what to do instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from salesbot.models import SalesStage

TRANSITIONS: dict[SalesStage, frozenset[SalesStage]] = {
    SalesStage.GREETING: frozenset({SalesStage.QUALIFYING}),
    SalesStage.QUALIFYING: frozenset({SalesStage.NEEDS_ANALYSIS}),
    SalesStage.NEEDS_ANALYSIS: frozenset({SalesStage.SOLUTION, SalesStage.QUALIFYING}),
    SalesStage.SOLUTION: frozenset({SalesStage.COMPANY_DETAILS, SalesStage.NEEDS_ANALYSIS}),
    SalesStage.COMPANY_DETAILS: frozenset({SalesStage.QUOTING, SalesStage.SOLUTION}),
    SalesStage.QUOTING: frozenset({SalesStage.CLOSING, SalesStage.SOLUTION}),
    SalesStage.CLOSING: frozenset(),
}

# Tools that make sense in every stage.
_COMMON_TOOLS = frozenset(
    {"search_products", "get_product", "search_knowledge", "save_customer_details", "request_human"}
)
_FINANCING_STAGES = frozenset({SalesStage.SOLUTION, SalesStage.COMPANY_DETAILS, SalesStage.QUOTING, SalesStage.CLOSING})


def tools_for_stage(stage: SalesStage) -> frozenset[str]:
    """The tool names offered to the model in a stage (the others are hidden, and refused if called anyway)."""
    tools = set(_COMMON_TOOLS)
    if TRANSITIONS[stage]:
        tools.add("advance_stage")
    if stage in _FINANCING_STAGES:
        tools.add("calculate_financing")
    if stage is SalesStage.QUOTING:
        tools.add("create_quote")
    return frozenset(tools)


@dataclass(frozen=True)
class FunnelState:
    """What the exit criteria look at: facts collected so far in the conversation."""

    need: str | None
    shown_skus: frozenset[str]
    selected_skus: frozenset[str]
    customer_name: str | None
    customer_company: str | None
    quotes: int


def missing_company_details(state: FunnelState) -> list[str]:
    missing = []
    if not state.customer_name:
        missing.append("name")
    if not state.customer_company:
        missing.append("company")
    return missing


def check_transition(current: SalesStage, target: SalesStage, state: FunnelState) -> str | None:
    """None if the move is allowed; otherwise why not, phrased so the model can act on it."""
    if target is current:
        return f"The conversation is already in stage '{current.value}'."
    allowed = TRANSITIONS[current]
    if target not in allowed:
        if not allowed:
            return f"Stage '{current.value}' is final; the stage cannot change any more."
        options = ", ".join(sorted(stage.value for stage in allowed))
        return (
            f"Cannot move from '{current.value}' to '{target.value}': stages advance one step at a time. "
            f"Allowed next stages from '{current.value}': {options}."
        )
    if current is SalesStage.QUALIFYING and target is SalesStage.NEEDS_ANALYSIS and not state.need:
        return "Find out what the customer needs first and pass it as the reason."
    if current is SalesStage.NEEDS_ANALYSIS and target is SalesStage.SOLUTION and not state.shown_skus:
        return "Find matching products first (search_products or get_product), then move to 'solution'."
    if current is SalesStage.SOLUTION and target is SalesStage.COMPANY_DETAILS and not state.selected_skus:
        return "Moving to 'company_details' needs the products the customer chose: pass them in selected_items."
    if current is SalesStage.COMPANY_DETAILS and target is SalesStage.QUOTING:
        if not state.selected_skus:
            return "No product is selected yet: go back to 'solution' and let the customer choose."
        missing = missing_company_details(state)
        if missing:
            return (
                f"Quoting needs the customer's {' and '.join(missing)}: ask for them and store them with "
                "save_customer_details first."
            )
    if current is SalesStage.QUOTING and target is SalesStage.CLOSING and state.quotes == 0:
        return "Create the quote with create_quote before closing."
    return None


def path_to(current: SalesStage, target: SalesStage) -> list[SalesStage]:
    """The shortest sequence of stages from `current` to `target` (excluding `current`); empty if unreachable."""
    previous: dict[SalesStage, SalesStage] = {}
    queue = deque([current])
    seen = {current}
    while queue:
        stage = queue.popleft()
        if stage is target:
            break
        for following in sorted(TRANSITIONS[stage], key=lambda s: s.value):
            if following not in seen:
                seen.add(following)
                previous[following] = stage
                queue.append(following)
    if target not in previous:
        return []
    path = [target]
    while path[-1] in previous and previous[path[-1]] is not current:
        path.append(previous[path[-1]])
    return list(reversed(path))
