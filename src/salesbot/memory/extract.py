"""Facts of a turn, read deterministically from what the tools returned and the state they left (no LLM call).

Tool results carry structured `ToolReturn.metadata` (agent/catalog_tools.py, agent/deal_tools.py): products
shown by search_products and get_product, the quote made by create_quote, the products chosen in advance_stage.
The customer's company, the need and the stage come from the rows the tools changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import ModelMessage, ToolReturnPart

from salesbot.memory.types import FactDraft, MemoryKind

# Stages worth remembering: how far a previous conversation got (greeting/qualifying say nothing).
_MEMORABLE_STAGES = frozenset({"solution", "company_details", "quoting", "closing"})
MAX_TEXT = 500


@dataclass(frozen=True)
class ToolResult:
    tool: str
    data: Mapping[str, Any]


def tool_results(messages: Sequence[ModelMessage]) -> list[ToolResult]:
    """Successful tool results of a run, in order, with their structured metadata."""
    found: list[ToolResult] = []
    for message in messages:
        for part in message.parts:
            if (
                isinstance(part, ToolReturnPart)
                and part.outcome == "success"
                and isinstance(part.metadata, dict)
                and part.metadata.get("status") == "ok"
            ):
                found.append(ToolResult(part.tool_name, part.metadata))
    return found


def _product_fact(product: Mapping[str, Any]) -> FactDraft | None:
    sku, name = str(product.get("sku") or "").strip(), str(product.get("name") or "").strip()
    if not sku:
        return None
    category = str(product.get("category") or "").strip()
    detail = f"SKU {sku}" + (f", {category}" if category else "")
    return FactDraft(MemoryKind.PRODUCT, sku.upper(), f"Asked about {name or sku} ({detail})"[:MAX_TEXT])


def _quote_fact(quote: Mapping[str, Any]) -> FactDraft | None:
    if quote.get("id") is None:
        return None
    items = ", ".join(
        f"{item.get('name') or item.get('sku')} ({item.get('sku')}) x {item.get('qty')}"
        for item in quote.get("items", [])
    )
    text = f"Received quote #{quote['id']}: {items}; total {quote.get('total')} {quote.get('currency')}"
    return FactDraft(MemoryKind.QUOTE, str(quote["id"]), text[:MAX_TEXT])


def facts_from_turn(
    results: Iterable[ToolResult],
    *,
    company: str | None,
    need: str | None,
    stage: str,
) -> list[FactDraft]:
    """The facts worth remembering after a turn, in the order of events (the memory treats later ones as more
    recent); a later fact of the same (kind, key) replaces an earlier one."""
    names: dict[str, str] = {}
    facts: dict[tuple[MemoryKind, str], FactDraft] = {}

    def add(fact: FactDraft | None) -> None:
        if fact is not None:
            facts.pop((fact.kind, fact.key), None)
            facts[(fact.kind, fact.key)] = fact

    for result in results:
        if result.tool == "search_products":
            # Best match last: it is what the customer asked about, so it counts as the most recent fact.
            products = list(reversed(result.data.get("products", [])))
        elif result.tool == "get_product":
            products = [result.data.get("product", {})]
        else:
            products = []
        for product in products:
            names[str(product.get("sku", "")).upper()] = str(product.get("name") or "")
            add(_product_fact(product))
        if result.tool == "create_quote":
            add(_quote_fact(result.data.get("quote", {})))
        if result.tool in ("advance_stage", "create_quote"):
            selected = result.data.get("selected") or [
                {"sku": item.get("sku"), "qty": item.get("qty")}
                for item in result.data.get("quote", {}).get("items", [])
            ]
            for item in selected:
                sku = str(item.get("sku") or "").strip()
                if sku:
                    name = names.get(sku.upper()) or sku
                    add(FactDraft(MemoryKind.CHOICE, sku.upper(), f"Chose {name} ({sku}) x {item.get('qty')}"))
    if company and company.strip():
        add(FactDraft(MemoryKind.COMPANY, MemoryKind.COMPANY.value, f"Company: {company.strip()}"[:MAX_TEXT]))
    if need and need.strip():
        add(FactDraft(MemoryKind.NEED, MemoryKind.NEED.value, f"Was looking for: {need.strip()}"[:MAX_TEXT]))
    if stage in _MEMORABLE_STAGES:
        label = stage.replace("_", " ")
        add(FactDraft(MemoryKind.STAGE, MemoryKind.STAGE.value, f"The last conversation reached the {label} stage"))
    return list(facts.values())
