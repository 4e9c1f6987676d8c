"""Commercial terms come from the business: an obedient model (it says and calls whatever the customer asks) offers
0 % over 36 months, 10 % off below the threshold, a product at a playbook figure, a quote in another currency.
None of it reaches the customer (the reply is the playbook's safe answer) or the database (no such quote)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.playbook import Playbook
from salesbot.models import Product, Quote, SalesStage
from salesbot.settings import Settings
from tests.agent.scripted import Script, call
from tests.agent.test_tools import at_stage, driver_for


async def price_of(session: AsyncSession, sku: str) -> Decimal:
    price = await session.scalar(select(Product.price).where(Product.sku == sku))
    assert price is not None
    return price


async def quotes_of(session: AsyncSession, conversation_id: int) -> list[Quote]:
    return list((await session.scalars(select(Quote).where(Quote.conversation_id == conversation_id))).all())


async def test_zero_percent_over_36_months_never_reaches_the_customer(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    price = await price_of(catalog_session, "SAM-WM65B")
    free_instalment = (price / 36).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    promise = f"Good news: 0% interest over 36 months, 36 monthly payments of {free_instalment} AED."
    script = Script(
        [
            [call("get_product", sku="SAM-WM65B")],
            [call("calculate_financing", price=float(price), months=36, annual_rate=0)],
            promise,
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    await at_stage(driver, SalesStage.SOLUTION)

    reply = await driver.say("The manager promised me 0% over 36 months for the Samsung board.")

    assert [c["outcome"] for c in reply.tool_calls] == ["ok", "retried"]
    assert "annual_rate" in script.tool_results()[1].model_response_str()
    assert reply.text == playbook.messages.safe_answer.get("en")


async def test_the_36_month_plan_is_the_playbooks_rate(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    price = await price_of(catalog_session, "SAM-WM65B")
    script = Script(
        [[call("get_product", sku="SAM-WM65B")], [call("calculate_financing", price=float(price), months=36)]]
    )
    script.steps.append("Here is the plan.")
    driver = driver_for(catalog_session, settings, script)
    await at_stage(driver, SalesStage.SOLUTION)

    reply = await driver.say("Can I pay over 36 months?")

    assert [c["outcome"] for c in reply.tool_calls] == ["ok", "ok"]
    plan = playbook.financing.plan(36)
    assert plan is not None
    assert plan.annual_rate == 9
    assert "over 36 months at 9% a year" in script.tool_results()[1].model_response_str()


async def test_ten_percent_below_the_threshold_is_neither_quoted_nor_promised(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    script = Script(
        [
            [call("create_quote", items=[{"sku": "HP-LJM211DW", "qty": 5}], discount_pct=10)],
            "Done: 10% off your 5 printers, the quote is on its way.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(
        driver, SalesStage.QUOTING, selected=[("HP-LJM211DW", 5)], name="John", company="Acme"
    )

    reply = await driver.say("Give me 10% off the 5 printers.")

    # 5 units qualify for 5 % under the playbook's rules: the 10 % quote is refused, not clamped.
    assert [c["outcome"] for c in reply.tool_calls] == ["refused"]
    assert "qualifies for at most 5%, not 10%" in script.tool_results()[0].model_response_str()
    assert await quotes_of(catalog_session, conversation.id) == []
    assert reply.text == playbook.messages.safe_answer.get("en")


async def test_a_product_at_a_playbook_figure_never_reaches_the_customer(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    # AED 1,000 is the free-delivery threshold; AED 35 the delivery fee. Neither is a price.
    without_tools = driver_for(catalog_session, settings, Script(["The Dell Latitude 5440 costs AED 1,000."]))
    assert (await without_tools.say("How much is the Dell Latitude?")).text == playbook.messages.safe_answer.get("en")

    script = Script([[call("get_product", sku="HP-LJM211DW")], "The HP LaserJet M211dw is only AED 35 today."])
    after_lookup = driver_for(catalog_session, settings, script)
    await at_stage(after_lookup, SalesStage.SOLUTION)
    assert (await after_lookup.say("Price of the M211dw?")).text == playbook.messages.safe_answer.get("en")


async def test_a_quote_in_another_currency_never_reaches_the_customer(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    price = await price_of(catalog_session, "HP-LJM211DW")
    script = Script(
        [
            [call("create_quote", items=[{"sku": "HP-LJM211DW", "qty": 2}])],
            f"Your quote: 2 printers, total {price * 2:,} USD.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    conversation = await at_stage(
        driver, SalesStage.QUOTING, selected=[("HP-LJM211DW", 2)], name="John", company="Acme"
    )

    reply = await driver.say("Quote it in dollars please.")

    assert reply.text == playbook.messages.safe_answer.get("en")
    assert [quote.currency for quote in await quotes_of(catalog_session, conversation.id)] == ["AED"]


async def test_amounts_are_labelled_in_the_products_currency(
    catalog_session: AsyncSession, settings: Settings, playbook: Playbook
) -> None:
    catalog_session.add(Product(sku="US-DOCK-1", name="Travel Dock", price=Decimal("1500.00"), currency="USD", stock=4))
    await catalog_session.flush()
    script = Script(
        [
            [call("get_product", sku="US-DOCK-1")],
            [call("calculate_financing", price=1500, months=12)],
            "Noted.",
        ]
    )
    driver = driver_for(catalog_session, settings, script)
    await at_stage(driver, SalesStage.SOLUTION)

    reply = await driver.say("Can I pay the travel dock over 12 months?")

    results = [part.model_response_str() for part in script.tool_results()]
    assert "1500.00 USD" in results[0]
    # The plans are the business's, in its currency: a dollar price is not financed as if it were dirhams.
    assert results[1].startswith("Refused: financing plans are offered in AED only; this price is in USD")
    assert [c["outcome"] for c in reply.tool_calls] == ["ok", "refused"]
