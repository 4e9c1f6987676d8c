"""Which tools to call next, and what the tool results mean for the answer.

The planner runs once per model step: it returns the next batch of tool calls (data first, then stage moves,
since tools in one batch run in order and the stage checks read what the data tools found), or nothing when
it is time to answer. `decide` reads this turn's results into the decisions the composer states.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic_ai.messages import ToolCallPart

from salesbot.agent.offline.intents import PLACEHOLDER, Turn
from salesbot.agent.offline.names import best_match, name_score
from salesbot.agent.offline.reading import Outcome
from salesbot.agent.stages import path_to
from salesbot.agent.turn_context import TurnItem
from salesbot.models import SalesStage

# Products of the last reply looked up again when the customer refers to them.
MAX_REFERENCED = 5
SHOWN_PER_REPLY = 3
_CONTEXT_INTENTS = frozenset({"recommend", "compare", "cheaper", "more", "reference", "affirm"})


@dataclass
class Decisions:
    """What this turn's tool results settle."""

    referenced: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    chosen: list[TurnItem] = field(default_factory=list[TurnItem])
    chosen_products: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    recommended: dict[str, Any] | None = None
    compared: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    hits: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    # Products a named model could be, when the name fits several equally (the customer is asked which).
    ambiguous: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    searched: bool = False


def _ok(outcomes: Sequence[Outcome], tool: str) -> list[Outcome]:
    return [outcome for outcome in outcomes if outcome.tool == tool and outcome.status == "ok"]


def _looked_up(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    return {
        outcome.data["product"]["sku"].upper(): outcome.data["product"]
        for outcome in _ok(outcomes, "get_product")
        if "product" in outcome.data
    }


def refers_back(turn: Turn) -> bool:
    """The message is about the products just shown rather than a new search."""
    if not turn.previous_skus or turn.skus:
        return False
    if turn.ordinal is not None or turn.intents & _CONTEXT_INTENTS:
        return True
    if turn.budget.max_price is not None or turn.budget.other_currency is not None:
        return False  # "budget around 4000 each": the same need, searched again within the budget
    # A short message with no category of its own may name one of them ("the LUMA then").
    return turn.category is None and len(turn.text.split()) <= 6 and not turn.intents - {"quote", "price", "stock"}


def _segment_searches(turn: Turn) -> list[str]:
    """Names to look up one by one: an order ("1 of X and 3 of Y") or a comparison of two named models."""
    if turn.ordinals and turn.previous_skus:
        return []  # "compare the first and the second": positions in the last list, not names
    named = [segment for segment in turn.segments if len(re.findall(r"\w{2,}", segment.text)) >= 1]
    if "compare" in turn.intents and len(named) >= 2:
        return [re.sub(r"(?i)^\W*(?:compare|сравни\w*|قارن)\s+", "", segment.text) for segment in named][:3]
    if len(named) >= 2 and all(segment.qty for segment in named):
        return [segment.text for segment in named][:3]
    return []


def decide(turn: Turn, outcomes: Sequence[Outcome]) -> Decisions:
    found = _looked_up(outcomes)
    decisions = Decisions()
    decisions.referenced = [found[sku.upper()] for sku in turn.previous_skus if sku.upper() in found]
    searches = _ok(outcomes, "search_products")
    decisions.searched = bool(searches)
    qty = turn.wanted_quantity or 1
    # Named products: an order of several models, or a comparison.
    segment_queries = _segment_searches(turn)
    if segment_queries:
        picked: list[dict[str, Any]] = []
        for query, segment in zip(segment_queries, [s for s in turn.segments if s.text], strict=False):
            candidates = decisions.referenced + [
                hit
                for outcome in searches
                if outcome.args.get("query") == query
                for hit in outcome.data.get("products", [])
            ]
            match = best_match(query, candidates)
            if match is None and searches:
                # Not one product ("the HP 250 G9": i3 or i5?): the closest names, to ask which one is meant.
                scores = {p["sku"]: name_score(query, str(p["name"]), str(p["sku"])) for p in candidates}
                top = max(scores.values(), default=0)
                decisions.ambiguous += [p for p in candidates if top and scores[p["sku"]] == top][:SHOWN_PER_REPLY]
            elif match is not None and match["sku"] not in {product["sku"] for product in picked}:
                picked.append(match)
                if "compare" not in turn.intents:
                    decisions.chosen.append(TurnItem(sku=match["sku"], qty=segment.qty or 1))
        if decisions.ambiguous and "compare" not in turn.intents:
            decisions.chosen = []  # an order is taken whole or not at all: never part of what was asked
        elif "compare" in turn.intents:
            decisions.compared = picked
        else:
            decisions.chosen_products = picked
        return decisions
    if "compare" in turn.intents and len(decisions.referenced) >= 2:
        positions = [p for p in turn.ordinals if -len(decisions.referenced) <= p <= len(decisions.referenced) and p]
        if len(positions) >= 2:
            decisions.compared = [decisions.referenced[p - 1 if p > 0 else p] for p in positions]
            return decisions
        named = [product for product in decisions.referenced if best_match(turn.text, [product]) is not None]
        decisions.compared = named if len(named) >= 2 else decisions.referenced[:SHOWN_PER_REPLY]
        return decisions
    if decisions.referenced:
        pick = None
        if turn.ordinal is not None and len(decisions.referenced) >= abs(turn.ordinal):
            pick = decisions.referenced[turn.ordinal - 1 if turn.ordinal > 0 else turn.ordinal]
        elif (match := best_match(turn.text, decisions.referenced, lenient=True)) is not None:
            pick = match
        elif "recommend" in turn.intents:
            decisions.recommended = recommend(decisions.referenced, qty, turn.budget.max_price)
        elif turn.intents & {"affirm", "reference", "quote"} and len(decisions.referenced) == 1:
            pick = decisions.referenced[0]
        if pick is not None and not turn.intents & {"cheaper", "more", "recommend"}:
            decisions.chosen = [TurnItem(sku=pick["sku"], qty=qty)]
            decisions.chosen_products = [pick]
        elif pick is not None and "recommend" in turn.intents:
            decisions.recommended = pick
    shown = {sku.upper() for sku in turn.context["shown_skus"]}
    hits = [hit for outcome in searches for hit in outcome.data.get("products", [])]
    if turn.intents & {"cheaper", "more"} and decisions.referenced:
        hits = [hit for hit in hits if hit["sku"].upper() not in shown]
    unique: dict[str, dict[str, Any]] = {}
    for hit in hits:
        unique.setdefault(hit["sku"], hit)
    decisions.hits = list(unique.values())[:SHOWN_PER_REPLY]
    return decisions


def recommend(products: Sequence[dict[str, Any]], qty: int, budget: Decimal | None) -> dict[str, Any]:
    """The one to recommend: enough in stock for the order, within budget, then the best match (first shown)."""

    def rank(item: tuple[int, dict[str, Any]]) -> tuple[int, int, int]:
        index, product = item
        enough = int(product["stock"]) >= qty
        within = budget is None or Decimal(product["price"]) <= budget
        return (0 if enough else 1, 0 if within else 1, index)

    return min(enumerate(products), key=rank)[1]


def search_query(turn: Turn) -> str:
    """The customer's words, or the need they stated before when this message only adds a budget or a filter."""
    own = PLACEHOLDER.sub(" ", turn.text)[:200].strip()
    if (
        turn.category is None
        and turn.remembered_query
        and (turn.budget.max_price is not None or turn.intents & {"cheaper", "more"} or "product" not in turn.intents)
    ):
        return turn.remembered_query
    return own


def wants_products(turn: Turn) -> bool:
    if turn.skus or "human" in turn.intents or turn.budget.other_currency is not None:
        return False
    if "knowledge" in turn.intents and turn.category is None and turn.budget.max_price is None:
        # "how much is delivery?", "can you deliver it? we need it fast": a policy question, not a product search
        return False
    if turn.category is not None or turn.budget.max_price is not None:
        return True
    if turn.intents & {"product", "price", "stock"}:
        return True
    informative = turn.intents - {"greeting", "thanks"}
    words = [word for word in re.findall(r"\w{3,}", PLACEHOLDER.sub(" ", turn.text)) if not word.isdigit()]
    return not informative and not turn.details.any() and len(words) >= 2 and "greeting" not in turn.intents


def _search_args(turn: Turn, *, category: bool = True, max_price: Decimal | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"query": search_query(turn)}
    ceiling = max_price if max_price is not None else turn.budget.max_price
    if ceiling is not None:
        args["max_price"] = float(ceiling)
    if category and turn.wanted_category:
        args["category"] = turn.wanted_category
    if "urgent" in turn.intents or ("stock" in turn.intents and "product" in turn.intents):
        args["in_stock_only"] = True  # "needed today", "do you have ... in stock": only what can ship now
    return args


def _key(tool: str, args: dict[str, Any]) -> str:
    if tool == "advance_stage":
        return str(args.get("to_stage"))
    if tool == "get_product":
        return str(args.get("sku", "")).upper()
    if tool in ("search_products", "search_knowledge"):
        return json.dumps(args, sort_keys=True)
    return tool


def stage_now(turn: Turn, outcomes: Sequence[Outcome]) -> SalesStage:
    stage = SalesStage(turn.context["stage"])
    for outcome in outcomes:
        if outcome.tool == "advance_stage" and outcome.status == "ok" and "stage" in outcome.data:
            stage = SalesStage(outcome.data["stage"])
    return stage


def has_details(turn: Turn, outcomes: Sequence[Outcome]) -> tuple[bool, bool]:
    saved = {name for outcome in _ok(outcomes, "save_customer_details") for name in outcome.data.get("saved", [])}
    has_name = bool(turn.context["customer_name"]) or "name" in saved
    has_company = bool(turn.context["customer_company"]) or "company" in saved
    return has_name, has_company


def quote_items(turn: Turn, outcomes: Sequence[Outcome]) -> list[TurnItem]:
    found = _looked_up(outcomes)
    if turn.items:
        return [
            TurnItem(sku=found[item["sku"].upper()]["sku"], qty=item["qty"])
            for item in turn.items
            if item["sku"].upper() in found
        ]
    chosen = decide(turn, outcomes).chosen
    if chosen:
        return chosen
    if turn.context["selected"]:
        return list(turn.context["selected"])
    shown = turn.context["shown_skus"]
    if len(shown) == 1:
        return [TurnItem(sku=shown[0], qty=turn.quantity or 1)]
    return []


def _reselects(turn: Turn, items: Sequence[TurnItem]) -> bool:
    """Whether the products and quantities named now differ from the stored selection."""
    selected = {(str(item["sku"]).upper(), int(item["qty"])) for item in turn.context["selected"]}
    return bool(selected) and selected != {(str(item["sku"]).upper(), int(item["qty"])) for item in items}


def accepting(turn: Turn) -> bool:
    """The customer accepts the quote they already have."""
    initial = SalesStage(turn.context["stage"])
    return bool(turn.intents & {"accept", "affirm"}) and initial is SalesStage.QUOTING and turn.context["has_quote"]


def wants_quote(turn: Turn, outcomes: Sequence[Outcome]) -> bool:
    """The customer wants to buy: asks for a quote, picks products, or sends quote details."""
    if accepting(turn):
        return False
    initial = SalesStage(turn.context["stage"])
    if "quote" in turn.intents or "accept" in turn.intents:
        return True
    if initial is SalesStage.COMPANY_DETAILS and turn.details.any():
        return True
    if decide(turn, outcomes).chosen:
        return True
    return turn.explicit_qty and bool(turn.items)


def _order(stage: SalesStage) -> int:
    return list(SalesStage).index(stage)


def _hop_reason(turn: Turn, hop: SalesStage) -> str:
    if hop is SalesStage.NEEDS_ANALYSIS:
        return search_query(turn) or "customer described a need"
    return {
        SalesStage.QUALIFYING: "the customer wrote to us",
        SalesStage.SOLUTION: "matching products were found and shown",
        SalesStage.COMPANY_DETAILS: "the customer chose products",
        SalesStage.QUOTING: "company details are collected",
        SalesStage.CLOSING: "the customer accepted the quote",
    }.get(hop, "next step")


def financing_price(outcomes: Sequence[Outcome]) -> Decimal | None:
    for outcome in reversed(outcomes):
        if outcome.status != "ok":
            continue
        if outcome.tool == "create_quote":
            return Decimal(outcome.data["quote"]["total"])
        if outcome.tool == "get_product" and "product" in outcome.data:
            return Decimal(outcome.data["product"]["price"])
        if outcome.tool == "search_products" and len(outcome.data.get("products", [])) == 1:
            return Decimal(outcome.data["products"][0]["price"])
    return None


def plan(
    turn: Turn, outcomes: Sequence[Outcome], called: Sequence[ToolCallPart], available: set[str]
) -> list[ToolCallPart]:
    """The next batch of tool calls for this turn (empty when it is time to answer)."""
    done = {(part.tool_name, _key(part.tool_name, part.args_as_dict())) for part in called}
    calls: list[ToolCallPart] = []
    stage = stage_now(turn, outcomes)

    def want(tool: str, args: dict[str, Any]) -> None:
        if tool in available and (tool, _key(tool, args)) not in done:
            calls.append(ToolCallPart(tool_name=tool, args=args))
            done.add((tool, _key(tool, args)))

    if "human" in turn.intents:
        want("request_human", {"reason": f"Customer asked for a manager: {turn.text[:200]}"})
        return calls
    if _ok(outcomes, "request_human"):
        return []

    details = turn.details
    if details.any():
        want("save_customer_details", {k: v for k, v in vars(details).items() if v})
    for sku in turn.skus:
        want("get_product", {"sku": sku})
    back = refers_back(turn)
    if back:
        for sku in turn.previous_skus[:MAX_REFERENCED]:
            want("get_product", {"sku": sku})
    if "financing" in turn.intents and not turn.skus and not back:
        known = [item["sku"] for item in turn.context["selected"]] or turn.context["shown_skus"]
        if len(known) == 1:
            want("get_product", {"sku": known[0]})
    segment_queries = _segment_searches(turn)
    for query in segment_queries:
        want("search_products", {"query": query})
    decisions = decide(turn, outcomes)
    referenced_round_done = not back or bool(decisions.referenced) or any(o.tool == "get_product" for o in outcomes)
    if not segment_queries and referenced_round_done:
        if back and turn.intents & {"cheaper", "objection"} and decisions.referenced:
            cheapest = min(Decimal(product["price"]) for product in decisions.referenced)
            want("search_products", _search_args(turn, max_price=cheapest - Decimal("0.01")))
        elif back and "more" in turn.intents:
            # The search returns a handful of rows, mostly those shown already: ask it from other angles too.
            want("search_products", _search_args(turn))
            want("search_products", {**_search_args(turn), "in_stock_only": True})
            if turn.wanted_category:
                want("search_products", {**_search_args(turn), "query": turn.wanted_category})
        elif not back and wants_products(turn) and turn.budget.other_currency is None:
            search = _search_args(turn)
            want("search_products", search)
            empty = [o for o in _ok(outcomes, "search_products") if o.args == search and not o.data.get("products")]
            if empty and "category" in search:
                want("search_products", _search_args(turn, category=False))
    if "knowledge" in turn.intents and not turn.skus:
        want("search_knowledge", {"query": PLACEHOLDER.sub(" ", turn.text)[:200].strip()})

    target = stage
    quote_wanted = wants_quote(turn, outcomes)
    found_products = (
        bool(turn.skus)
        or (wants_products(turn) and not back)
        or any(
            outcome.tool in ("search_products", "get_product")
            and outcome.status == "ok"
            and (outcome.data.get("products") or outcome.data.get("product"))
            for outcome in outcomes
        )
    )
    if stage is SalesStage.GREETING:
        target = SalesStage.QUALIFYING
    if found_products and _order(stage) < _order(SalesStage.SOLUTION):
        target = SalesStage.SOLUTION
    items = quote_items(turn, outcomes)
    has_name, has_company = has_details(turn, outcomes)
    if quote_wanted and (items or turn.skus):
        target = SalesStage.QUOTING if has_name and has_company else SalesStage.COMPANY_DETAILS
    if accepting(turn):
        target = SalesStage.CLOSING
    refused = any(outcome.tool == "advance_stage" and outcome.status == "refused" for outcome in outcomes)
    if stage is SalesStage.COMPANY_DETAILS and quote_wanted and turn.items and items and _reselects(turn, items):
        # The customer changed their mind before the quote: the FSM re-selects through solution, and the
        # selection the quote is built from becomes what they asked for now.
        want("advance_stage", {"to_stage": SalesStage.SOLUTION.value, "reason": "The customer changed the selection."})
        return calls
    if _order(target) > _order(stage) and not refused:
        for hop in path_to(stage, target):
            if hop is SalesStage.COMPANY_DETAILS and not items:
                break  # the chosen products are confirmed by get_product first (next round)
            args: dict[str, Any] = {"to_stage": hop.value, "reason": _hop_reason(turn, hop)}
            if hop is SalesStage.COMPANY_DETAILS:
                args["selected_items"] = [dict(item) for item in items]
            want("advance_stage", args)

    entered_quoting = any(o.data.get("stage") == "quoting" for o in _ok(outcomes, "advance_stage"))
    quoted = any(outcome.tool == "create_quote" for outcome in outcomes)
    if stage is SalesStage.QUOTING and (quote_wanted or entered_quoting) and items and not quoted:
        quote: dict[str, Any] = {"items": [dict(item) for item in items]}
        if turn.discount_pct:
            # Asked for with the order: the tool applies it if the quote qualifies, or refuses (never clamps).
            quote["discount_pct"] = float(turn.discount_pct)
        want("create_quote", quote)
    if "financing" in turn.intents:
        price = financing_price(outcomes)
        if price is not None:
            want("calculate_financing", {"price": float(price), "months": turn.months})
    return calls
