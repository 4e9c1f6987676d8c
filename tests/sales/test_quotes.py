"""Quote pricing: catalog prices, the playbook's discount rules, one currency per quote; stored only when allowed."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.playbook import DEFAULT_PLAYBOOK_PATH, Playbook, load_playbook, parse_playbook
from salesbot.models import Channel, Conversation, Customer, Product, Quote
from salesbot.sales.quotes import LineRequest, QuoteInputError, QuoteRefused, create_quote, price_quote, quote_text

PLAYBOOK = load_playbook()


@pytest.fixture
async def catalog(db_session: AsyncSession) -> AsyncSession:
    db_session.add_all(
        [
            Product(sku="CH-1", name="Office chair", price=Decimal("450.00"), currency="AED", stock=30),
            Product(sku="DK-1", name="Standing desk", price=Decimal("2500.00"), currency="AED", stock=3),
            Product(sku="US-1", name="Travel dock", price=Decimal("99.00"), currency="USD", stock=8),
            Product(sku="OLD-1", name="Retired", price=Decimal("1.00"), currency="AED", stock=1, active=False),
        ]
    )
    await db_session.flush()
    return db_session


@pytest.mark.parametrize(
    ("lines", "allowed"),
    [
        ([("CH-1", 4)], Decimal(0)),
        ([("CH-1", 5)], Decimal(5)),
        ([("ch-1", 6), ("CH-1", 4)], Decimal(10)),  # 10 units of one product, in two lines
        ([("CH-1", 3), ("DK-1", 3)], Decimal(0)),  # 6 units, but of two products; subtotal 8,850
        ([("DK-1", 8)], Decimal(5)),  # subtotal 20,000
    ],
)
async def test_the_discount_a_quote_qualifies_for(
    catalog: AsyncSession, lines: list[tuple[str, int]], allowed: Decimal
) -> None:
    priced = await price_quote(catalog, PLAYBOOK, [LineRequest(sku, qty) for sku, qty in lines], allowed)
    assert priced.allowed_discount_pct == allowed
    assert priced.discount_pct == allowed
    assert priced.total == priced.subtotal - (priced.subtotal * allowed / 100).quantize(Decimal("0.01"))


async def test_more_than_the_quote_qualifies_for_is_refused_and_nothing_is_stored(catalog: AsyncSession) -> None:
    customer = Customer(channel=Channel.CONSOLE, chat_id="terms-1")
    catalog.add(customer)
    await catalog.flush()
    conversation = Conversation(customer_id=customer.id, channel=Channel.CONSOLE)
    catalog.add(conversation)
    await catalog.flush()

    with pytest.raises(QuoteRefused, match="qualifies for at most 5%, not 10%"):
        await create_quote(catalog, PLAYBOOK, conversation.id, [LineRequest("CH-1", 5)], Decimal(10))
    with pytest.raises(QuoteRefused, match="exceeds the maximum of 10%"):
        await create_quote(catalog, PLAYBOOK, conversation.id, [LineRequest("CH-1", 50)], Decimal("10.01"))
    assert await catalog.scalar(select(func.count()).select_from(Quote)) == 0

    quote, priced = await create_quote(catalog, PLAYBOOK, conversation.id, [LineRequest("CH-1", 5)], Decimal(5))
    stored = await catalog.get(Quote, quote.id)
    assert stored is not None
    assert (stored.subtotal, stored.discount_pct, stored.total, stored.currency) == (
        Decimal("2250.00"),
        Decimal("5.00"),
        Decimal("2137.50"),
        "AED",
    )
    assert "- CH-1 Office chair x 5 @ 450.00 AED = 2250.00 AED" in quote_text(quote.id, priced)


async def test_a_quote_is_in_its_products_currency(catalog: AsyncSession) -> None:
    priced = await price_quote(catalog, PLAYBOOK, [LineRequest("US-1", 2)], Decimal(0))
    assert priced.currency == "USD"
    assert "Total: 198.00 USD" in quote_text(1, priced)
    with pytest.raises(QuoteRefused, match="different currencies"):
        await price_quote(catalog, PLAYBOOK, [LineRequest("US-1", 1), LineRequest("CH-1", 1)], Decimal(0))


async def test_a_subtotal_rule_holds_only_in_the_playbooks_currency(catalog: AsyncSession) -> None:
    # 250 docks make 24,750 dollars: the 20,000 threshold is in dirhams, and volume rules still apply.
    priced = await price_quote(catalog, PLAYBOOK, [LineRequest("US-1", 4)], Decimal(0))
    assert priced.allowed_discount_pct == 0
    data = yaml.safe_load(DEFAULT_PLAYBOOK_PATH.read_text(encoding="utf-8"))
    data["discount"]["rules"] = [{"max_pct": 5, "min_subtotal": 300}]
    subtotal_only: Playbook = parse_playbook(data)
    assert (await price_quote(catalog, subtotal_only, [LineRequest("US-1", 4)], Decimal(0))).allowed_discount_pct == 0
    assert (await price_quote(catalog, subtotal_only, [LineRequest("CH-1", 1)], Decimal(5))).discount_pct == 5


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "at least one product line"),
        ([("NOPE", 1)], "Unknown or inactive SKU"),
        ([("OLD-1", 1)], "Unknown or inactive SKU"),
        ([("CH-1", 6000), ("CH-1", 6000)], "at most 10000 units"),
    ],
)
async def test_impossible_requests_are_input_errors(
    catalog: AsyncSession, lines: list[tuple[str, int]], message: str
) -> None:
    with pytest.raises(QuoteInputError, match=message):
        await price_quote(catalog, PLAYBOOK, [LineRequest(sku, qty) for sku, qty in lines], Decimal(0))
