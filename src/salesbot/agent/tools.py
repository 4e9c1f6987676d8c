"""The sales agent's tools (names are a contract: DESIGN.md). Docstrings are the schema the model reads.

Every tool takes identity from `ctx.deps` (conversation, customer), runs its database work in a SAVEPOINT and
only flushes, so a refused or failed call leaves the database as it was and the turn job decides about the
commit. Text returned to the model is PII-masked; placeholders in arguments are resolved here. Structured
results ride along as `ToolReturn.metadata` (never sent to the model; the offline responder composes from it).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import ModelRetry, RunContext, Tool, ToolReturn
from pydantic_ai.tools import ToolDefinition
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstanceState

from salesbot.agent import repository
from salesbot.agent.deps import MAX_STAGE_HISTORY, AgentDeps, SelectedItem, StageChange
from salesbot.agent.grounding import MONEY_TAG, as_money, figures
from salesbot.agent.pii import PLACEHOLDER
from salesbot.agent.stages import check_transition, tools_for_stage
from salesbot.kit.logging import get_logger
from salesbot.knowledge.types import KnowledgeHit, ProductFilters, ProductHit
from salesbot.models import Owner, Quote, SalesStage

log = get_logger(__name__)

CENT = Decimal("0.01")
MAX_QUOTE_LINES = 20
MAX_QTY = 10_000
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class QuoteLine(BaseModel):
    """One product line: a catalog SKU and how many units."""

    sku: str = Field(min_length=1, max_length=64, description="catalog SKU exactly as the tools returned it")
    qty: int = Field(default=1, ge=1, le=MAX_QTY, description="number of units")


def money(value: Decimal, currency: str) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP)} {currency}"


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


def _reply(deps: AgentDeps, text: str, metadata: dict[str, Any], *, grounded: set[str] | None = None) -> ToolReturn:
    """Masked text for the model; the numbers in it (or just `grounded`) become citable figures."""
    masked = deps.pii.mask(text)
    deps.remember_figures(figures(text) if grounded is None else grounded)
    return ToolReturn(return_value=masked, metadata=metadata)


def _refusal(deps: AgentDeps, tool: str, reason: str) -> ToolReturn:
    log.info("agent.tool_refused", tool=tool, conversation=deps.conversation_id)
    return ToolReturn(
        return_value=deps.pii.mask(f"Refused: {reason}"), metadata={"status": "refused", "reason": reason}
    )


async def _failure(deps: AgentDeps, tool: str) -> ToolReturn:
    log.exception("agent.tool_failed", tool=tool, conversation=deps.conversation_id)
    # The savepoint was rolled back, which expires what it had changed: reload it now, as the rest of the run
    # reads these objects synchronously (instructions, other tools).
    for instance in (deps.conversation, deps.customer):
        state: InstanceState[Any] = sa_inspect(instance)
        if state.detached:
            continue  # the turn's detached copy: the rollback did not touch it
        try:
            await deps.session.refresh(instance)
        except Exception:
            log.exception("agent.refresh_failed", tool=tool, conversation=deps.conversation_id)
    text = (
        f"{tool} failed because of an internal error. Do not guess the result: tell the customer you will "
        "check, or offer a manager with request_human."
    )
    return ToolReturn(return_value=text, metadata={"status": "failed"})


def _unavailable(deps: AgentDeps, tool: str) -> ToolReturn | None:
    stage = deps.conversation.sales_stage
    if tool in tools_for_stage(stage):
        return None
    return _refusal(deps, tool, f"{tool} is not available in stage '{stage.value}'.")


def _resolve(deps: AgentDeps, value: str | None, *, field: str) -> str | None:
    """A tool argument with placeholders resolved; an unknown placeholder is an error the model can fix."""
    if value is None:
        return None
    for match in PLACEHOLDER.finditer(value):
        if not deps.pii.knows(match.group(0)):
            raise ModelRetry(f"{field}: {match.group(0)} is not a placeholder of this conversation; use one you saw.")
    resolved = deps.pii.resolve(value)
    return resolved or None


def _decimal(value: float | int | str, *, field: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as error:
        raise ModelRetry(f"{field} must be a number") from error
    if not result.is_finite():
        raise ModelRetry(f"{field} must be a finite number")
    return result


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
        limit_price = _decimal(max_price, field="max_price")
        if limit_price <= 0:
            raise ModelRetry("max_price must be positive (leave it out for no price limit)")
    filters = ProductFilters(
        max_price=limit_price, category=(category or "").strip() or None, in_stock_only=in_stock_only
    )
    try:
        async with deps.session.begin_nested():
            hits = await deps.search.search_products(PLACEHOLDER.sub(" ", query), filters=filters, limit=5)
    except Exception:
        return await _failure(deps, "search_products")
    if not hits:
        return _reply(
            deps,
            "No matching products in the catalog. Ask the customer for other words, a different budget or "
            "category, or offer alternatives; do not invent products.",
            {"status": "ok", "products": []},
        )
    deps.remember_shown([hit.sku for hit in hits])
    text = "Matching products (prices and stock from the catalog):\n" + "\n".join(_product_line(h) for h in hits)
    return _reply(deps, text, {"status": "ok", "products": [_product_data(hit) for hit in hits]})


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
        return await _failure(deps, "get_product")
    if hit is None:
        return _reply(
            deps,
            f"No active product with SKU {wanted}. Use search_products to find the right SKU.",
            {"status": "not_found", "sku": wanted},
            grounded=set(),
        )
    deps.remember_shown([hit.sku])
    return _reply(deps, _product_line(hit), {"status": "ok", "product": _product_data(hit)})


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
        return await _failure(deps, "search_knowledge")
    if not hits:
        return _reply(
            deps,
            "Nothing in the knowledge base answers this. Do not guess: say you will check, or offer a manager.",
            {"status": "ok", "knowledge": []},
        )
    text = "\n\n".join(f"[{hit.title or hit.source}]\n{hit.content}" for hit in hits)
    data = [{"title": hit.title, "source": hit.source, "content": deps.pii.mask(hit.content)} for hit in hits]
    return _reply(deps, text, {"status": "ok", "knowledge": data})


async def advance_stage(
    ctx: RunContext[AgentDeps],
    to_stage: SalesStage,
    reason: str,
    selected_items: list[QuoteLine] | None = None,
) -> ToolReturn:
    """Move the conversation to the next sales stage once the current stage's goal is reached.

    Stages go greeting -> qualifying -> needs_analysis -> solution -> company_details -> quoting -> closing,
    one step at a time (you may also step back: needs_analysis -> qualifying, solution -> needs_analysis,
    company_details -> solution, quoting -> solution). The move is checked in code and refused, with the
    reason, when it is not allowed yet; the stage then stays as it was.

    Args:
        to_stage: The stage to move to.
        reason: Why, in one sentence. When moving to needs_analysis, state the customer's need here.
        selected_items: The products the customer chose, with quantities. Required when moving to company_details.
    """
    deps = ctx.deps
    conversation = deps.conversation
    current = conversation.sales_stage
    if (refused := _unavailable(deps, "advance_stage")) is not None:
        return refused
    reason = reason.strip()
    if not reason:
        raise ModelRetry("reason must explain the move in one sentence")
    try:
        async with deps.session.begin_nested():
            selected = deps.selected_items()
            if selected_items:
                products = await repository.active_products(deps.session, [line.sku for line in selected_items])
                unknown = [line.sku for line in selected_items if line.sku not in products]
                if unknown:
                    raise ModelRetry(f"Unknown or inactive SKU(s): {', '.join(unknown)}. Use SKUs from the tools.")
                merged: dict[str, int] = {}
                for line in selected_items:
                    product_sku = products[line.sku].sku
                    merged[product_sku] = merged.get(product_sku, 0) + line.qty
                selected = [SelectedItem(sku=sku, qty=qty) for sku, qty in merged.items()]
            state = deps.funnel_state(quotes=await repository.quote_count(deps.session, conversation.id))
            prospective = state.__class__(
                need=reason[:500] if to_stage is SalesStage.NEEDS_ANALYSIS else state.need,
                shown_skus=state.shown_skus,
                selected_skus=frozenset(item["sku"] for item in selected),
                customer_name=state.customer_name,
                customer_company=state.customer_company,
                quotes=state.quotes,
            )
            problem = check_transition(current, to_stage, prospective)
            if problem is not None:
                return _refusal(deps, "advance_stage", f"{problem} The stage stays '{current.value}'.")
            history = list(deps.facts.get("stage_history", []))
            history.append(
                StageChange(
                    at=deps.now.isoformat(), from_stage=current.value, to_stage=to_stage.value, reason=reason[:300]
                )
            )
            changes: dict[str, Any] = {"stage_history": history[-MAX_STAGE_HISTORY:], "selected": selected}
            if to_stage is SalesStage.NEEDS_ANALYSIS:
                changes["need"] = prospective.need
            deps.update_facts(**changes)
            conversation.sales_stage = to_stage
            await deps.session.flush()
    except ModelRetry:
        raise
    except Exception:
        return await _failure(deps, "advance_stage")
    log.info(
        "agent.stage_changed", conversation=deps.conversation_id, from_stage=current.value, to_stage=to_stage.value
    )
    chosen = ", ".join(f"{item['sku']} x {item['qty']}" for item in selected)
    text = f"Stage changed: {current.value} -> {to_stage.value}." + (f" Selected: {chosen}." if chosen else "")
    return _reply(deps, text, {"status": "ok", "stage": to_stage.value, "selected": selected}, grounded=set())


async def save_customer_details(
    ctx: RunContext[AgentDeps],
    name: str | None = None,
    company: str | None = None,
    email: str | None = None,
) -> ToolReturn:
    """Store the customer's name, company and/or e-mail address for the quotation.

    Contact details appear as placeholders such as [EMAIL_1]: pass them exactly as written, they are resolved
    here. Only pass what the customer actually told you.

    Args:
        name: The customer's name.
        company: The customer's company name.
        email: The customer's e-mail address (usually a placeholder like [EMAIL_1]).
    """
    deps = ctx.deps
    values = {
        "name": _resolve(deps, name, field="name"),
        "company": _resolve(deps, company, field="company"),
        "email": _resolve(deps, email, field="email"),
    }
    if not any(values.values()):
        raise ModelRetry("pass at least one of name, company or email")
    if values["email"] is not None and not _EMAIL.fullmatch(values["email"]):
        raise ModelRetry("email is not a valid e-mail address; pass the placeholder the customer's address became")
    for field_name in ("name", "company"):
        value = values[field_name]
        if value is not None and len(value) > 200:
            raise ModelRetry(f"{field_name} is too long (at most 200 characters)")
    customer = deps.customer
    try:
        async with deps.session.begin_nested():
            if values["name"]:
                customer.name = values["name"]
            if values["company"]:
                customer.company = values["company"]
            if values["email"]:
                customer.email = values["email"]
            await deps.session.flush()
    except Exception:
        return await _failure(deps, "save_customer_details")
    saved = {key: value for key, value in values.items() if value}
    log.info("agent.customer_details_saved", conversation=deps.conversation_id, fields=sorted(saved))
    text = "Saved: " + ", ".join(f"{key}: {value}" for key, value in saved.items()) + "."
    missing = [label for label, value in (("name", customer.name), ("company", customer.company)) if not value]
    if missing:
        text += f" Still missing for a quote: {', '.join(missing)}."
    return _reply(deps, text, {"status": "ok", "saved": sorted(saved)}, grounded=set())


async def create_quote(ctx: RunContext[AgentDeps], items: list[QuoteLine], discount_pct: float = 0) -> ToolReturn:
    """Create a quotation from catalog prices and store it; returns the quote text to send to the customer.

    Unit prices, totals and currency come from the catalog. A discount above the company's maximum is
    refused (no quote is created): never promise more than the policy allows.

    Args:
        items: The product lines: SKU and quantity for each product the customer wants.
        discount_pct: Discount on the whole quote in percent (0 for none), within company policy.
    """
    deps = ctx.deps
    if (refused := _unavailable(deps, "create_quote")) is not None:
        return refused
    discount = _decimal(discount_pct, field="discount_pct").quantize(CENT, rounding=ROUND_HALF_UP)
    if discount < 0:
        raise ModelRetry("discount_pct cannot be negative")
    cap = deps.playbook.discount.max_pct
    if discount > cap:
        return _refusal(
            deps,
            "create_quote",
            f"a {discount.normalize():f}% discount exceeds the maximum of {cap.normalize():f}% allowed by company "
            f"policy. No quote was created. Offer at most {cap.normalize():f}% (or none); if the customer insists "
            "on more, offer a manager with request_human.",
        )
    if not items:
        raise ModelRetry("items must list at least one product")
    if len(items) > MAX_QUOTE_LINES:
        raise ModelRetry(f"a quote has at most {MAX_QUOTE_LINES} lines")
    try:
        async with deps.session.begin_nested():
            products = await repository.active_products(deps.session, [line.sku for line in items])
            unknown = [line.sku for line in items if line.sku not in products]
            if unknown:
                raise ModelRetry(f"Unknown or inactive SKU(s): {', '.join(unknown)}. Use SKUs from the tools.")
            quantities: dict[str, int] = {}
            for line in items:
                sku = products[line.sku].sku
                quantities[sku] = quantities.get(sku, 0) + line.qty
            by_sku = {product.sku: product for product in products.values()}
            currencies = {by_sku[sku].currency for sku in quantities}
            if len(currencies) > 1:
                return _refusal(
                    deps, "create_quote", "the products are priced in different currencies; quote them separately."
                )
            if any(qty > MAX_QTY for qty in quantities.values()):
                raise ModelRetry(f"at most {MAX_QTY} units per product")
            currency = currencies.pop()
            lines: list[dict[str, Any]] = []
            subtotal = Decimal(0)
            notes: list[str] = []
            for sku, qty in quantities.items():
                product = by_sku[sku]
                unit = product.price.quantize(CENT)
                line_total = (unit * qty).quantize(CENT)
                subtotal += line_total
                lines.append(
                    {
                        "sku": sku,
                        "name": product.name,
                        "qty": qty,
                        "unit_price": str(unit),
                        "line_total": str(line_total),
                    }
                )
                if qty > product.stock:
                    notes.append(f"only {product.stock} of {sku} in stock now; the rest ships when restocked")
            discount_amount = (subtotal * discount / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            total = subtotal - discount_amount
            quote = Quote(
                conversation_id=deps.conversation.id,
                items=lines,
                subtotal=subtotal,
                discount_pct=discount,
                discount_amount=discount_amount,
                total=total,
                currency=currency,
            )
            deps.session.add(quote)
            await deps.session.flush()
            deps.update_facts(
                last_quote_id=quote.id, selected=[SelectedItem(sku=sku, qty=qty) for sku, qty in quantities.items()]
            )
            await deps.session.flush()
    except ModelRetry:
        raise
    except Exception:
        return await _failure(deps, "create_quote")
    log.info("agent.quote_created", conversation=deps.conversation_id, quote=quote.id, lines=len(lines))
    text_lines = [f"Quote #{quote.id} ({currency})"]
    text_lines += [
        f"- {line['sku']} {line['name']} x {line['qty']} @ {line['unit_price']} = {line['line_total']}"
        for line in lines
    ]
    text_lines.append(f"Subtotal: {money(subtotal, currency)}")
    if discount:
        text_lines.append(f"Discount {discount.normalize():f}%: -{money(discount_amount, currency)}")
    text_lines.append(f"Total: {money(total, currency)}")
    text_lines += [f"Note: {note}." for note in notes]
    data = {
        "status": "ok",
        "quote": {
            "id": quote.id,
            "currency": currency,
            "items": lines,
            "subtotal": str(subtotal),
            "discount_pct": str(discount),
            "discount_amount": str(discount_amount),
            "total": str(total),
            "notes": notes,
        },
    }
    return _reply(deps, "\n".join(text_lines), data)


async def calculate_financing(
    ctx: RunContext[AgentDeps],
    price: float,
    months: int,
    down_payment: float = 0,
    annual_rate: float | None = None,
) -> ToolReturn:
    """Monthly instalment for buying on credit (standard amortisation), using the partner bank's terms.

    Args:
        price: The amount to finance before the down payment: a unit price or quote total the tools returned.
        months: Number of monthly instalments.
        down_payment: Paid upfront, reduces the financed amount.
        annual_rate: Yearly interest rate in percent; leave it out for the company's standard rate.
    """
    deps = ctx.deps
    if (refused := _unavailable(deps, "calculate_financing")) is not None:
        return refused
    policy = deps.playbook.financing
    amount = _decimal(price, field="price").quantize(CENT, rounding=ROUND_HALF_UP)
    down = _decimal(down_payment, field="down_payment").quantize(CENT, rounding=ROUND_HALF_UP)
    rate = policy.default_annual_rate if annual_rate is None else _decimal(annual_rate, field="annual_rate")
    if amount <= 0:
        raise ModelRetry("price must be positive")
    if not {MONEY_TAG + value for value in figures(str(amount))} & deps.grounded_figures():
        raise ModelRetry(
            "price must be a unit price or quote total returned by get_product, search_products or create_quote"
        )
    if down < 0 or down >= amount:
        raise ModelRetry("down_payment must be at least 0 and less than the price")
    if not 1 <= months <= policy.max_months:
        raise ModelRetry(f"months must be between 1 and {policy.max_months}")
    if not 0 <= rate <= 100:
        raise ModelRetry("annual_rate must be between 0 and 100 percent")
    principal = amount - down
    monthly_rate = rate / Decimal(1200)
    if monthly_rate == 0:
        payment = principal / months
    else:
        payment = principal * monthly_rate / (1 - (1 + monthly_rate) ** -months)
    payment = payment.quantize(CENT, rounding=ROUND_HALF_UP)
    total_paid = payment * months + down
    interest = total_paid - amount
    currency = deps.playbook.currency
    text = (
        f"Financing of {money(amount, currency)} with {money(down, currency)} down over {months} months at "
        f"{rate.normalize():f}% a year: {months} monthly payments of {money(payment, currency)}; financed amount "
        f"{money(principal, currency)}; total paid {money(total_paid, currency)} "
        f"(interest {money(interest, currency)})."
    )
    if policy.terms:
        text += f" Terms: {policy.terms}"
    outputs = {str(value) for value in (payment, total_paid, interest, principal, down)}
    grounded: set[str] = set()
    for value in outputs:
        grounded |= as_money(figures(value))
    data = {
        "status": "ok",
        "financing": {
            "price": str(amount),
            "down_payment": str(down),
            "months": months,
            "annual_rate": str(rate),
            "monthly_payment": str(payment),
            "total_paid": str(total_paid),
            "interest": str(interest),
            "currency": currency,
        },
    }
    return _reply(deps, text, data, grounded=grounded | figures(str(months)))


async def hand_to_human(deps: AgentDeps, reason: str) -> None:
    """Give the chat to a manager: the bot stays silent until the takeover expires or a manager hands it back."""
    conversation = deps.conversation
    conversation.owner = Owner.HUMAN
    conversation.owner_until = deps.now + timedelta(hours=deps.settings.conversation.human_takeover_hours)
    conversation.needs_attention = True
    deps.update_facts(handoff_reason=reason[:300])
    deps.turn.handoff = True
    deps.turn.handoff_reason = reason[:300]
    await deps.session.flush()
    log.info("agent.handoff", conversation=deps.conversation_id)


async def request_human(ctx: RunContext[AgentDeps], reason: str) -> ToolReturn:
    """Hand the conversation to a human manager.

    Use it when the customer asks for a person, when they want something outside policy (a bigger discount,
    special terms), or when you cannot help. After this call, tell the customer briefly that a colleague will
    follow up here; it is your last message in this chat.

    Args:
        reason: Why a manager is needed, in one sentence (the manager reads it).
    """
    deps = ctx.deps
    try:
        async with deps.session.begin_nested():
            await hand_to_human(deps, deps.pii.resolve(reason) or "customer asked for a manager")
    except Exception:
        return await _failure(deps, "request_human")
    return _reply(
        deps,
        "Done: a manager now owns this chat and will reply here. Tell the customer briefly that a colleague will "
        "follow up; do not promise a time and do not ask further questions.",
        {"status": "ok", "handoff": True},
        grounded=set(),
    )


async def _offered_in_stage(ctx: RunContext[AgentDeps], tool_def: ToolDefinition) -> ToolDefinition | None:
    """Hide the tools that make no sense in the conversation's current stage."""
    return tool_def if tool_def.name in tools_for_stage(ctx.deps.conversation.sales_stage) else None


TOOL_FUNCTIONS = (
    search_products,
    get_product,
    search_knowledge,
    advance_stage,
    save_customer_details,
    create_quote,
    calculate_financing,
    request_human,
)

# Sequential: the tools share one database session, which must not be used concurrently.
SALES_TOOLS: list[Tool[AgentDeps]] = [
    Tool(function, prepare=_offered_in_stage, sequential=True, max_retries=2) for function in TOOL_FUNCTIONS
]
