"""The agent's read-only tools: catalog search, one product by SKU, the knowledge base (agent/tools.py)."""

from __future__ import annotations

from typing import Any

from pydantic_ai import ModelRetry, RunContext, ToolReturn

from salesbot.agent.deps import AgentDeps
from salesbot.agent.grounding import Evidence, catalog_evidence, policy_evidence
from salesbot.agent.pii import PLACEHOLDER
from salesbot.agent.tool_results import decimal_argument, failure, tool_reply
from salesbot.kit.logging import get_logger
from salesbot.knowledge.types import KnowledgeHit, ProductFilters, ProductHit
from salesbot.sales.quotes import CENT, money

log = get_logger(__name__)


def _stock_text(stock: int) -> str:
    return f"in stock: {stock}" if stock > 0 else "out of stock (stock: 0)"


def _product_data(hit: ProductHit) -> dict[str, Any]:
    return {
        "sku": hit.sku,
        "name": hit.name,
        "price": str(hit.price.quantize(CENT)),
        "currency": hit.currency,
        "stock": hit.stock,
        "category": hit.category,
        "description": hit.description,
    }


def _product_line(hit: ProductHit) -> str:
    line = f"- SKU {hit.sku} | {hit.name} | {money(hit.price, hit.currency)} | {_stock_text(hit.stock)}"
    if hit.category:
        line += f" | category: {hit.category}"
    if hit.description:
        line += f"\n  {hit.description}"
    return line


def _hit_evidence(hit: ProductHit) -> list[Evidence]:
    return catalog_evidence(hit.sku, hit.name, hit.price, hit.currency, hit.stock)


async def search_products(
    ctx: RunContext[AgentDeps],
    query: str,
    max_price: float | None = None,
    category: str | None = None,
    in_stock_only: bool = False,
) -> ToolReturn:
    """Search the catalog for products that match what the customer wants.

    Use it whenever the customer describes a product, a need or a budget. Each result gives the SKU, name,
    unit price, stock and category straight from the catalog: state prices and stock only as returned here
    or by get_product.

    Args:
        query: What the customer is looking for, in their own words and language, e.g. "ergonomic chair with headrest".
        max_price: Only products with a unit price at or below this amount (catalog currency).
        category: Only this catalog category, when the customer named one.
        in_stock_only: Only products in stock now (for urgent needs).
    """
    deps = ctx.deps
    if not query.strip():
        raise ModelRetry("query must describe what the customer is looking for")
    limit_price = None
    if max_price is not None:
        limit_price = decimal_argument(max_price, field="max_price")
        if limit_price <= 0:
            raise ModelRetry("max_price must be positive (leave it out for no price limit)")
    filters = ProductFilters(
        max_price=limit_price, category=(category or "").strip() or None, in_stock_only=in_stock_only
    )
    try:
        async with deps.session.begin_nested():
            hits = await deps.search.search_products(PLACEHOLDER.sub(" ", query), filters=filters, limit=5)
    except Exception:
        return await failure(deps, "search_products")
    if not hits:
        return tool_reply(
            deps,
            "No matching products in the catalog. Ask the customer for other words, a different budget or "
            "category, or offer alternatives; do not invent products.",
            {"status": "ok", "products": []},
        )
    deps.remember_shown([hit.sku for hit in hits])
    text = "Matching products (prices and stock from the catalog):\n" + "\n".join(_product_line(h) for h in hits)
    cites = [item for hit in hits for item in _hit_evidence(hit)]
    return tool_reply(deps, text, {"status": "ok", "products": [_product_data(hit) for hit in hits]}, cites=cites)


async def get_product(ctx: RunContext[AgentDeps], sku: str) -> ToolReturn:
    """Look up one product by SKU: current unit price, stock and description from the catalog.

    Call it before stating a price or availability for a product the customer asks about by name or SKU.

    Args:
        sku: The catalog SKU exactly as the customer or a search result wrote it.
    """
    deps = ctx.deps
    wanted = sku.strip()
    if not wanted:
        raise ModelRetry("sku must not be empty")
    try:
        async with deps.session.begin_nested():
            hit = await deps.search.get_product(wanted)
    except Exception:
        return await failure(deps, "get_product")
    if hit is None:
        return tool_reply(
            deps,
            f"No active product with SKU {wanted}. Use search_products to find the right SKU.",
            {"status": "not_found", "sku": wanted},
        )
    deps.remember_shown([hit.sku])
    return tool_reply(
        deps, _product_line(hit), {"status": "ok", "product": _product_data(hit)}, cites=_hit_evidence(hit)
    )


async def search_knowledge(ctx: RunContext[AgentDeps], query: str) -> ToolReturn:
    """Search the business's knowledge base: delivery, payment, warranty, returns, company information.

    Use it for any question that is not about a specific product's price or stock.

    Args:
        query: The customer's question in their own words and language.
    """
    deps = ctx.deps
    if not query.strip():
        raise ModelRetry("query must not be empty")
    try:
        async with deps.session.begin_nested():
            hits: list[KnowledgeHit] = await deps.search.search_knowledge(PLACEHOLDER.sub(" ", query), limit=3)
    except Exception:
        return await failure(deps, "search_knowledge")
    if not hits:
        return tool_reply(
            deps,
            "Nothing in the knowledge base answers this. Do not guess: say you will check, or offer a manager.",
            {"status": "ok", "knowledge": []},
        )
    text = "\n\n".join(f"[{hit.title or hit.source}]\n{hit.content}" for hit in hits)
    data = [{"title": hit.title, "source": hit.source, "content": deps.pii.mask(hit.content)} for hit in hits]
    cites = [item for hit in hits for item in policy_evidence(hit.content)]
    return tool_reply(deps, text, {"status": "ok", "knowledge": data}, cites=cites)
