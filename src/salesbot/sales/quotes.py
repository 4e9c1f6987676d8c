"""Quote pricing: catalog prices, the playbook's discount rules, totals; and storing the quote.

`price_quote` computes without writing; `create_quote` stores the result (flush only: the caller commits). A
discount above what the quote qualifies for is refused, never clamped: the caller tells the customer why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.playbook import Playbook
from salesbot.kit.currency import smallest_unit
from salesbot.kit.errors import AppError
from salesbot.models import Quote
from salesbot.sales.repository import active_products

CENT = Decimal("0.01")
MAX_QUOTE_LINES = 20
MAX_QTY = 10_000


class QuoteInputError(AppError):
    """The request names unknown products or impossible quantities: the caller can correct it."""

    status_code = 422


class QuoteRefused(AppError):
    """The business's rules do not allow this quote (a discount it does not qualify for, mixed currencies)."""

    status_code = 409


def money(value: Decimal, currency: str) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP)} {currency}"


def percent(value: Decimal) -> str:
    return f"{value.normalize():f}%"


@dataclass(frozen=True)
class LineRequest:
    sku: str
    qty: int


@dataclass(frozen=True)
class PricedLine:
    sku: str
    name: str
    qty: int
    unit_price: Decimal
    line_total: Decimal
    stock: int

    def as_item(self) -> dict[str, Any]:
        """The line as stored in `quotes.items`."""
        return {
            "sku": self.sku,
            "name": self.name,
            "qty": self.qty,
            "unit_price": str(self.unit_price),
            "line_total": str(self.line_total),
        }


@dataclass(frozen=True)
class PricedQuote:
    lines: list[PricedLine]
    currency: str
    subtotal: Decimal
    discount_pct: Decimal
    discount_amount: Decimal
    total: Decimal
    # The most this quote qualifies for under the playbook's rules.
    allowed_discount_pct: Decimal

    @property
    def notes(self) -> list[str]:
        return [
            f"only {line.stock} of {line.sku} in stock now; the rest ships when restocked"
            for line in self.lines
            if line.qty > line.stock
        ]

    @property
    def skus(self) -> list[str]:
        return [line.sku for line in self.lines]


async def price_quote(
    session: AsyncSession, playbook: Playbook, requested: Sequence[LineRequest], discount_pct: Decimal
) -> PricedQuote:
    """Price the lines from the catalog and apply `discount_pct` if the playbook's rules allow it for this quote."""
    discount = discount_pct.quantize(CENT, rounding=ROUND_HALF_UP)
    if discount < 0:
        raise QuoteInputError("the discount cannot be negative")
    if not requested:
        raise QuoteInputError("a quote needs at least one product line")
    if len(requested) > MAX_QUOTE_LINES:
        raise QuoteInputError(f"a quote has at most {MAX_QUOTE_LINES} lines")
    products = await active_products(session, [line.sku for line in requested])
    unknown = [line.sku for line in requested if line.sku not in products]
    if unknown:
        raise QuoteInputError(f"Unknown or inactive SKU(s): {', '.join(unknown)}")
    quantities: dict[str, int] = {}
    for line in requested:
        if line.qty < 1:
            raise QuoteInputError("quantities must be at least 1")
        sku = products[line.sku].sku
        quantities[sku] = quantities.get(sku, 0) + line.qty
    if any(qty > MAX_QTY for qty in quantities.values()):
        raise QuoteInputError(f"at most {MAX_QTY} units per product")
    by_sku = {product.sku: product for product in products.values()}
    currencies = {by_sku[sku].currency for sku in quantities}
    if len(currencies) > 1:
        raise QuoteRefused("the products are priced in different currencies; quote them separately")
    currency = currencies.pop()
    lines = []
    for sku, qty in quantities.items():
        product = by_sku[sku]
        unit = product.price.quantize(CENT)
        lines.append(PricedLine(sku, product.name, qty, unit, (unit * qty).quantize(CENT), product.stock))
    subtotal = sum((line.line_total for line in lines), Decimal(0))
    allowed = playbook.allowed_discount(list(quantities.values()), subtotal, currency)
    if discount > allowed:
        raise QuoteRefused(_discount_refusal(playbook, discount, allowed))
    # Rounded to what the currency can be paid in (whole yen), at most to the cent the columns keep: the total
    # is then an amount a payment link can charge exactly.
    unit = max(smallest_unit(currency), CENT)
    discount_amount = (subtotal * discount / 100).quantize(unit, rounding=ROUND_HALF_UP).quantize(CENT)
    return PricedQuote(lines, currency, subtotal, discount, discount_amount, subtotal - discount_amount, allowed)


def _discount_refusal(playbook: Playbook, asked: Decimal, allowed: Decimal) -> str:
    policy = playbook.discount
    if asked > policy.max_pct:
        reason = (
            f"a {percent(asked)} discount exceeds the maximum of {percent(policy.max_pct)} allowed by company policy"
        )
    elif allowed == 0:
        reason = f"this quote qualifies for no discount ({policy.describe(playbook.currency)})"
    else:
        reason = (
            f"this quote qualifies for at most {percent(allowed)}, not {percent(asked)} "
            f"({policy.describe(playbook.currency)})"
        )
    return reason


async def create_quote(
    session: AsyncSession,
    playbook: Playbook,
    conversation_id: int,
    requested: Sequence[LineRequest],
    discount_pct: Decimal = Decimal(0),
) -> tuple[Quote, PricedQuote]:
    """Price and store a quote for the conversation (flushes; the caller commits)."""
    priced = await price_quote(session, playbook, requested, discount_pct)
    quote = Quote(
        conversation_id=conversation_id,
        items=[line.as_item() for line in priced.lines],
        subtotal=priced.subtotal,
        discount_pct=priced.discount_pct,
        discount_amount=priced.discount_amount,
        total=priced.total,
        currency=priced.currency,
    )
    session.add(quote)
    await session.flush()
    return quote, priced


def quote_text(quote_id: int, priced: PricedQuote) -> str:
    """The quote as the customer reads it, every amount labelled with the quote's currency."""
    currency = priced.currency
    lines = [f"Quote #{quote_id} ({currency})"]
    lines += [
        f"- {line.sku} {line.name} x {line.qty} @ {money(line.unit_price, currency)} = "
        f"{money(line.line_total, currency)}"
        for line in priced.lines
    ]
    lines.append(f"Subtotal: {money(priced.subtotal, currency)}")
    if priced.discount_pct:
        lines.append(f"Discount {percent(priced.discount_pct)}: -{money(priced.discount_amount, currency)}")
    lines.append(f"Total: {money(priced.total, currency)}")
    lines += [f"Note: {note}." for note in priced.notes]
    return "\n".join(lines)
