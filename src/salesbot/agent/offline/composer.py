"""The answer, composed only from this turn's tool results (so every price and stock figure is grounded)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from salesbot.agent.offline.intents import Turn
from salesbot.agent.offline.lexicon import text
from salesbot.agent.offline.planner import Decisions, decide, has_details, quote_items, stage_now, wants_quote
from salesbot.agent.offline.reading import Outcome
from salesbot.models import SalesStage


class _Texts:
    def __init__(self, turn: Turn) -> None:
        self.language = turn.language
        self.overrides = turn.context.get("texts") or {}

    def __call__(self, key: str, **values: Any) -> str:
        return text(key, self.language, self.overrides, **values)


def _stock(t: _Texts, stock: int) -> str:
    return t("in_stock", stock=stock) if stock > 0 else t("out_of_stock")


def product_line(t: _Texts, product: dict[str, Any], qty: int | None = None) -> str:
    prefix = f"{qty} × " if qty else ""
    return (
        f"• {prefix}{product['name']} (SKU {product['sku']}): {product['price']} {product['currency']}, "
        f"{_stock(t, int(product['stock']))}"
    )


def _quote_text(t: _Texts, quote: dict[str, Any]) -> str:
    currency = quote["currency"]
    lines = [t("quote_intro", id=quote["id"])]
    lines += [
        # Line totals without the currency: create_quote states them as plain numbers, only the totals as money.
        f"• {item['name']} (SKU {item['sku']}) × {item['qty']} @ {item['unit_price']} = {item['line_total']}"
        for item in quote["items"]
    ]
    lines.append(f"{t('subtotal')}: {quote['subtotal']} {currency}")
    if Decimal(quote["discount_pct"]):
        discount_pct = f"{Decimal(quote['discount_pct']).normalize():f}"
        lines.append(f"{t('discount')} {discount_pct}%: -{quote['discount_amount']} {currency}")
    lines.append(f"{t('total')}: {quote['total']} {currency}")
    return "\n".join(lines)


def _comparison(t: _Texts, products: Sequence[dict[str, Any]]) -> str:
    lines = [t("compare_intro")]
    for product in products:
        description = " ".join(str(product.get("description") or "").split())
        if len(description) > 160:
            description = description[:159].rstrip() + "…"
        lines.append(
            f"• {product['name']} (SKU {product['sku']})\n  {t('compare_price')}: {product['price']} "
            f"{product['currency']} | {t('compare_stock')}: {_stock(t, int(product['stock']))}"
            + (f"\n  {description}" if description else "")
        )
    return "\n".join(lines)


def _recommendation(t: _Texts, turn: Turn, product: dict[str, Any], options: Sequence[dict[str, Any]]) -> str:
    qty = turn.wanted_quantity
    lines = [
        t(
            "recommend",
            name=product["name"],
            sku=product["sku"],
            price=product["price"],
            currency=product["currency"],
            stock=_stock(t, int(product["stock"])),
        )
    ]
    if qty and qty > 1 and int(product["stock"]) >= qty:
        lines.append(t("why_stock", qty=qty))
    if turn.budget.max_price is not None and Decimal(product["price"]) <= turn.budget.max_price:
        lines.append(t("why_budget"))
    elif len(options) > 1 and Decimal(product["price"]) == min(Decimal(o["price"]) for o in options):
        lines.append(t("why_cheapest"))
    elif options and product["sku"] == options[0]["sku"]:
        lines.append(t("why_best"))
    return " ".join(lines)


def _products_part(t: _Texts, turn: Turn, decisions: Decisions, outcomes: Sequence[Outcome]) -> list[str]:
    parts: list[str] = []
    if decisions.chosen_products:
        quantities = {item["sku"]: item["qty"] for item in decisions.chosen}
        lines = [product_line(t, product, quantities.get(product["sku"])) for product in decisions.chosen_products]
        parts.append(t("chosen") + "\n" + "\n".join(lines))
        return parts
    if decisions.ambiguous:
        parts.append(t("which_model") + "\n" + "\n".join(product_line(t, product) for product in decisions.ambiguous))
        return parts
    if decisions.compared:
        parts.append(_comparison(t, decisions.compared))
        return parts
    if decisions.recommended is not None:
        parts.append(_recommendation(t, turn, decisions.recommended, decisions.referenced))
        return parts
    looked_up = [
        outcome.data["product"]
        for outcome in outcomes
        if outcome.tool == "get_product" and outcome.status == "ok" and "product" in outcome.data
    ]
    own = [product for product in looked_up if product["sku"].upper() in turn.skus]
    if own:
        parts.append("\n".join(product_line(t, product) for product in own))
    if decisions.hits:
        if turn.intents & {"cheaper", "objection"} and decisions.referenced:
            header = t("found_cheaper")
        elif "more" in turn.intents and decisions.referenced:
            header = t("found_more")
        elif turn.budget.max_price is not None:
            header = t(
                "found_budget", budget=f"{turn.budget.max_price.normalize():f}", currency=turn.context["currency"]
            )
        elif turn.wanted_quantity and turn.wanted_quantity > 1:
            header = t("found_for", qty=turn.wanted_quantity)
        else:
            header = t("found")
        parts.append(header + "\n" + "\n".join(product_line(t, hit) for hit in decisions.hits))
    elif decisions.searched:
        if turn.intents & {"cheaper", "objection"} and decisions.referenced:
            parts.append(t("none_cheaper"))
        elif "more" in turn.intents and decisions.referenced:
            parts.append(t("no_more"))
        elif turn.budget.max_price is not None:
            budget = f"{turn.budget.max_price.normalize():f}"
            parts.append(t("nothing_budget", budget=budget, currency=turn.context["currency"]))
        else:
            parts.append(t("nothing"))
    elif "compare" in turn.intents:
        parts.append(t("compare_need"))
    return parts


def compose(turn: Turn, outcomes: Sequence[Outcome]) -> str:
    """The reply, composed only from this turn's tool results."""
    t = _Texts(turn)
    context = turn.context

    def ok(tool: str) -> list[Outcome]:
        return [outcome for outcome in outcomes if outcome.tool == tool and outcome.status == "ok"]

    if ok("request_human"):
        return context["handoff_text"]
    parts: list[str] = []
    saved = ok("save_customer_details")
    if saved:
        name = turn.details.name or context["customer_name"]
        parts.append(t("thank_you_name", name=name) if name else t("saved"))

    quotes = ok("create_quote")
    if quotes:
        parts.append(_quote_text(t, quotes[-1].data["quote"]))
        parts.append(t("quote_next"))
        return "\n\n".join(parts)
    if any(outcome.tool == "create_quote" and outcome.status == "refused" for outcome in outcomes):
        parts.append(t("quote_refused", cap=context["discount_cap"]))

    stage = stage_now(turn, outcomes)
    if stage is SalesStage.CLOSING and any(o.data.get("stage") == "closing" for o in ok("advance_stage")):
        parts.append(t("closing"))
        return "\n\n".join(parts)

    for outcome in outcomes:
        if outcome.tool == "get_product" and outcome.status == "not_found":
            parts.append(t("not_found_sku", sku=outcome.data.get("sku", "")))
    if turn.budget.other_currency is not None:
        parts.append(t("other_currency", currency=context["currency"]))
    decisions = decide(turn, outcomes)
    parts += _products_part(t, turn, decisions, outcomes)

    financing = ok("calculate_financing")
    if financing:
        data = financing[-1].data["financing"]
        parts.append(
            t(
                "financing",
                price=data["price"],
                months=data["months"],
                payment=data["monthly_payment"],
                total=data["total_paid"],
                currency=data["currency"],
            )
        )
    elif "financing" in turn.intents and not ok("get_product"):
        parts.append(t("financing_need_product"))

    knowledge = [hit for outcome in ok("search_knowledge") for hit in outcome.data.get("knowledge", [])]
    if knowledge:
        content = " ".join(str(knowledge[0]["content"]).split())
        parts.append(content if len(content) <= 600 else content[:599].rstrip() + "…")
    elif ok("search_knowledge") and not parts:
        parts.append(t("knowledge_none"))

    if any(outcome.status == "failed" for outcome in outcomes) and not parts:
        parts.append(t("check_later"))

    if "objection" in turn.intents and not decisions.hits and not decisions.searched:
        parts.append(t("objection", cap=context["discount_cap"]))
    elif "objection" in turn.intents:
        parts.append(t("volume_discount", cap=context["discount_cap"]))

    # What to ask next, by where the conversation stands now.
    has_name, has_company = has_details(turn, outcomes)
    if stage is SalesStage.COMPANY_DETAILS:
        missing = [
            t(key) for key, present in (("missing_name", has_name), ("missing_company", has_company)) if not present
        ]
        if not saved:
            parts.append(t("ask_details"))
        elif missing:
            parts.append(t("ask_missing", missing=t("and").join(missing)))
    elif wants_quote(turn, outcomes) and not quote_items(turn, outcomes):
        parts.append(t("ask_product"))
    elif decisions.recommended is not None:
        parts.append(t("recommend_next"))
    elif decisions.compared:
        parts.append(t("compare_next"))
    elif decisions.hits or any(
        str(outcome.data.get("product", {}).get("sku", "")).upper() in turn.skus for outcome in ok("get_product")
    ):
        parts.append(t("choose"))
    elif decisions.referenced and turn.ordinal is None and not decisions.searched:
        parts.append(t("which_one"))

    if not parts:
        if "thanks" in turn.intents:
            parts.append(t("thanks"))
        elif "greeting" in turn.intents or SalesStage(context["stage"]) is SalesStage.GREETING:
            parts.append(t("hello", assistant=context["assistant"], company=context["company"]))
            if context.get("returning_product"):
                parts.append(t("welcome_back", product=context["returning_product"]))
        else:
            parts.append(t("fallback"))
    return "\n\n".join(parts)
