"""The agent's tools that move a deal: sales stage, customer details, quotes, financing, a manager (agent/tools.py).

A tool that writes rows also `keep`s how to write them again in the turn's draft (salesbot.agent.draft)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import ModelRetry, RunContext, ToolReturn
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState

from salesbot.agent import repository
from salesbot.agent.deps import MAX_STAGE_HISTORY, AgentDeps, SelectedItem, StageChange
from salesbot.agent.draft import Effect
from salesbot.agent.grounding import DISCOUNT, STOCK, Evidence, canonical, evidence
from salesbot.agent.stages import check_transition
from salesbot.agent.tool_results import (
    decimal_argument,
    failure,
    refusal,
    resolve_argument,
    tool_reply,
    unavailable_in_stage,
)
from salesbot.alerts import service as alerts
from salesbot.crm import service as crm_service
from salesbot.kit.logging import get_logger
from salesbot.models import Owner, Quote, SalesStage
from salesbot.payments import service as payment_service
from salesbot.sales import financing as financing_service
from salesbot.sales import quotes as quote_service
from salesbot.sales.quotes import CENT, MAX_QTY

log = get_logger(__name__)

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class QuoteLine(BaseModel):
    """One product line: a catalog SKU and how many units."""

    sku: str = Field(min_length=1, max_length=64, description="catalog SKU exactly as the tools returned it")
    qty: int = Field(default=1, ge=1, le=MAX_QTY, description="number of units")


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
    if (refused := unavailable_in_stage(deps, "advance_stage")) is not None:
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
                return refusal(deps, "advance_stage", f"{problem} The stage stays '{current.value}'.")
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
            acceptance = None
            if current is SalesStage.QUOTING and to_stage is SalesStage.CLOSING:
                # Moving from quoting to closing is the customer's acceptance of the newest quote.
                acceptance = await payment_service.accept_quote(
                    deps.session, deps.settings, conversation_id=conversation.id, now=deps.now
                )
                if acceptance is not None:
                    deps.draft.keep(_accepting(deps, acceptance.quote_id))
            await deps.session.flush()
    except ModelRetry:
        raise
    except Exception:
        return await failure(deps, "advance_stage")
    log.info(
        "agent.stage_changed", conversation=deps.conversation_id, from_stage=current.value, to_stage=to_stage.value
    )
    chosen = ", ".join(f"{item['sku']} x {item['qty']}" for item in selected)
    text = f"Stage changed: {current.value} -> {to_stage.value}." + (f" Selected: {chosen}." if chosen else "")
    if acceptance is not None and acceptance.link_id is not None:
        text += (
            f" A secure payment link for quote #{acceptance.quote_id} is being sent in this chat in a moment: tell "
            "the customer they can pay with it; do not write a link yourself."
        )
    return tool_reply(deps, text, {"status": "ok", "stage": to_stage.value, "selected": selected})


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
        "name": resolve_argument(deps, name, field="name"),
        "company": resolve_argument(deps, company, field="company"),
        "email": resolve_argument(deps, email, field="email"),
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
            # The contact and the deal reach the CRM through a job after the turn's commit.
            await _crm_sync(deps)(deps.session)
            deps.draft.keep(_crm_sync(deps))
            await deps.session.flush()
    except Exception:
        return await failure(deps, "save_customer_details")
    saved = {key: value for key, value in values.items() if value}
    log.info("agent.customer_details_saved", conversation=deps.conversation_id, fields=sorted(saved))
    text = "Saved: " + ", ".join(f"{key}: {value}" for key, value in saved.items()) + "."
    missing = [label for label, value in (("name", customer.name), ("company", customer.company)) if not value]
    if missing:
        text += f" Still missing for a quote: {', '.join(missing)}."
    return tool_reply(deps, text, {"status": "ok", "saved": sorted(saved)})


async def create_quote(ctx: RunContext[AgentDeps], items: list[QuoteLine], discount_pct: float = 0) -> ToolReturn:
    """Create a quotation from catalog prices and store it; returns the quote text to send to the customer.

    Unit prices, totals and currency come from the catalog. A discount is allowed only as far as the quote
    qualifies under the company's discount rules (for example a minimum number of units); a higher one is
    refused and no quote is created: never promise a discount before this tool granted it.

    Args:
        items: The product lines: SKU and quantity for each product the customer wants.
        discount_pct: Discount on the whole quote in percent (0 for none), within company policy.
    """
    deps = ctx.deps
    if (refused := unavailable_in_stage(deps, "create_quote")) is not None:
        return refused
    discount = decimal_argument(discount_pct, field="discount_pct")
    if discount < 0:
        raise ModelRetry("discount_pct cannot be negative")
    requested = [quote_service.LineRequest(line.sku, line.qty) for line in items]
    try:
        async with deps.session.begin_nested():
            quote, priced = await quote_service.create_quote(
                deps.session, deps.playbook, deps.conversation.id, requested, discount
            )
            deps.update_facts(
                last_quote_id=quote.id,
                selected=[SelectedItem(sku=line.sku, qty=line.qty) for line in priced.lines],
            )
            await _quote_followups(deps, quote)(deps.session)
            deps.draft.keep(_quote_stored(deps, quote))
            await deps.session.flush()
    except quote_service.QuoteInputError as error:
        raise ModelRetry(f"{error.message}. Use SKUs and quantities from the tools.") from error
    except quote_service.QuoteRefused as error:
        return refusal(
            deps,
            "create_quote",
            f"{error.message}. No quote was created. Quote without a discount or within what the quote qualifies "
            "for; if the customer insists on more, offer a manager with request_human.",
        )
    except Exception:
        return await failure(deps, "create_quote")
    log.info("agent.quote_created", conversation=deps.conversation_id, quote=quote.id, lines=len(priced.lines))
    data = {
        "status": "ok",
        "quote": {
            "id": quote.id,
            "currency": priced.currency,
            "items": [line.as_item() for line in priced.lines],
            "subtotal": str(priced.subtotal),
            "discount_pct": str(priced.discount_pct),
            "discount_amount": str(priced.discount_amount),
            "total": str(priced.total),
            "notes": priced.notes,
        },
    }
    return tool_reply(deps, quote_service.quote_text(quote.id, priced), data, cites=_quote_evidence(priced))


# --- what a writing tool keeps for the turn's commit (salesbot.agent.draft) -------------------------------------


def _crm_sync(deps: AgentDeps, quote_id: int | None = None) -> Effect:
    customer_id, conversation_id, now = deps.customer.id, deps.conversation_id, deps.now

    async def effect(session: AsyncSession) -> None:
        await crm_service.request_sync(
            session, deps.settings, customer_id=customer_id, conversation_id=conversation_id, now=now, quote_id=quote_id
        )

    return effect


def _quote_followups(deps: AgentDeps, quote: Quote) -> Effect:
    """A stored quote alerts the team when large and takes the deal to the CRM."""

    async def effect(session: AsyncSession) -> None:
        await alerts.alert_large_quote(session, deps.settings.alerts, quote)
        await _crm_sync(deps, quote.id)(session)

    return effect


def _quote_stored(deps: AgentDeps, quote: Quote) -> Effect:
    """The quote as priced for the model, with the id it was shown with (never the catalog's price at commit)."""
    state: InstanceState[Quote] = sa_inspect(quote)
    row = {
        attribute.key: state.dict[attribute.key]
        for attribute in state.mapper.column_attrs
        if attribute.key in state.dict
    }

    async def effect(session: AsyncSession) -> None:
        copy = Quote(**row)
        session.add(copy)
        await session.flush()
        await _quote_followups(deps, copy)(session)

    return effect


def _accepting(deps: AgentDeps, quote_id: int) -> Effect:
    conversation_id, now = deps.conversation_id, deps.now

    async def effect(session: AsyncSession) -> None:
        await payment_service.accept_quote(
            session, deps.settings, conversation_id=conversation_id, now=now, quote_id=quote_id
        )

    return effect


def _quote_evidence(priced: quote_service.PricedQuote) -> list[Evidence]:
    currency, skus = priced.currency, priced.skus
    cites = [
        evidence("quote", value, currency=currency, skus=skus)
        for value in (priced.subtotal, priced.discount_amount, priced.total)
    ]
    for line in priced.lines:
        cites += [
            evidence("quote", value, currency=currency, skus=[line.sku]) for value in (line.unit_price, line.line_total)
        ]
        cites.append(evidence(STOCK, line.stock, skus=[line.sku]))
    if priced.discount_pct:
        cites.append(evidence(DISCOUNT, priced.discount_pct, skus=skus))
    return cites


def _price_source(deps: AgentDeps, amount: Decimal) -> tuple[str, list[str]]:
    """The currency and products of a catalog price or quote total this conversation's tools returned."""
    value = canonical(amount)
    sources = [item for item in deps.ledger().items if item["kind"] in ("price", "quote") and item["value"] == value]
    if not sources:
        raise ModelRetry(
            "price must be a unit price or quote total returned by get_product, search_products or create_quote"
        )
    currencies = {item["currency"] for item in sources}
    if len(currencies) > 1:
        raise ModelRetry("that price belongs to products in different currencies; create a quote and finance its total")
    return currencies.pop(), sorted({sku for item in sources for sku in item.get("skus", [])})


async def calculate_financing(
    ctx: RunContext[AgentDeps], price: float, months: int, down_payment: float = 0
) -> ToolReturn:
    """Monthly instalments for buying on credit under one of the company's financing plans.

    You choose the term; the plan for that term sets the interest rate and the minimum amount (there is no
    other rate). A term the company does not offer, or an amount below the plan's minimum, is refused with
    the plans that exist.

    Args:
        price: The amount to finance before the down payment: a unit price or quote total the tools returned.
        months: Number of monthly instalments: one of the plans' terms.
        down_payment: Paid upfront, reduces the financed amount.
    """
    deps = ctx.deps
    if (refused := unavailable_in_stage(deps, "calculate_financing")) is not None:
        return refused
    amount = decimal_argument(price, field="price").quantize(CENT)
    down = decimal_argument(down_payment, field="down_payment")
    if amount <= 0:
        raise ModelRetry("price must be positive")
    currency, skus = _price_source(deps, amount)
    try:
        offer = financing_service.finance(
            deps.playbook, price=amount, currency=currency, months=months, down_payment=down
        )
    except financing_service.FinancingInputError as error:
        raise ModelRetry(error.message) from error
    except financing_service.FinancingRefused as error:
        return refusal(
            deps,
            "calculate_financing",
            f"{error.message}. Offer one of the plans that exist ({financing_service.plans_text(deps.playbook)}) "
            "or a manager with request_human; never another rate or term.",
        )
    text = offer.text()
    if deps.playbook.financing.terms:
        text += f" Terms: {deps.playbook.financing.terms}"
    cites = [
        evidence("financing", value, currency=offer.currency, skus=skus)
        for value in (
            offer.price,
            offer.down_payment,
            offer.principal,
            offer.monthly_payment,
            offer.total_paid,
            offer.interest,
        )
    ]
    data = {
        "status": "ok",
        "financing": {
            "price": str(offer.price),
            "down_payment": str(offer.down_payment),
            "months": offer.months,
            "annual_rate": str(offer.annual_rate),
            "monthly_payment": str(offer.monthly_payment),
            "total_paid": str(offer.total_paid),
            "interest": str(offer.interest),
            "currency": offer.currency,
        },
    }
    return tool_reply(deps, text, data, cites=cites)


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
        return await failure(deps, "request_human")
    return tool_reply(
        deps,
        "Done: a manager now owns this chat and will reply here. Tell the customer briefly that a colleague will "
        "follow up; do not promise a time and do not ask further questions.",
        {"status": "ok", "handoff": True},
    )
