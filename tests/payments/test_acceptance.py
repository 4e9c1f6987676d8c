"""Acceptance through the agent: the move from quoting to closing accepts the newest quote and asks for its link."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver, CustomerSetup
from salesbot.agent.playbook import load_playbook
from salesbot.agent.service import SalesAgentService
from salesbot.models import PaymentLink, PaymentStatus, Product, Quote, SalesStage
from salesbot.sales import quotes as quote_service
from salesbot.settings import Settings
from tests.agent.scripted import Script, call

NOW = datetime.now(UTC)


async def quoting(session: AsyncSession, settings: Settings, script: Script) -> tuple[ChatDriver, Quote]:
    driver = ChatDriver(
        session,
        SalesAgentService(model=script.model, clock=lambda: NOW),
        settings,
        customer=CustomerSetup(name="Dana", company="Acme"),
    )
    conversation = await driver.start()
    session.add(Product(sku="CH-100", name="Ergonomic chair", price=Decimal("249.99"), currency="USD", stock=40))
    await session.flush()
    quote, _ = await quote_service.create_quote(
        session, load_playbook(), conversation.id, [quote_service.LineRequest("CH-100", 2)]
    )
    conversation.sales_stage = SalesStage.QUOTING
    conversation.facts = {"selected": [{"sku": "CH-100", "qty": 2}], "last_quote_id": quote.id}
    await session.flush()
    return driver, quote


ACCEPT = [[call("advance_stage", to_stage="closing", reason="the customer accepted the quote")], "Wonderful!"]


async def test_moving_to_closing_accepts_the_quote_and_asks_for_one_payment_link(
    db_session: AsyncSession, settings: Settings
) -> None:
    script = Script(ACCEPT)
    driver, quote = await quoting(db_session, settings, script)

    await driver.say("Yes, please go ahead with the order")

    assert driver.conversation is not None
    assert driver.conversation.sales_stage is SalesStage.CLOSING
    [link] = (await db_session.scalars(select(PaymentLink).where(PaymentLink.quote_id == quote.id))).all()
    assert (link.status, link.amount_minor, link.currency) == (PaymentStatus.PENDING, 49998, "USD")
    await db_session.refresh(quote)
    assert quote.accepted_at == NOW
    assert quote.payment_status is PaymentStatus.PENDING
    # The model learns the link is on its way, and is told not to write one itself.
    result = script.tool_results()[0].model_response_str()
    assert f"payment link for quote #{quote.id}" in result


async def test_without_stripe_acceptance_is_recorded_and_no_link_is_asked_for(
    db_session: AsyncSession, settings: Settings
) -> None:
    without = settings.model_copy(update={"stripe": settings.stripe.model_copy(update={"api_key": SecretStr("")})})
    script = Script(ACCEPT)
    driver, quote = await quoting(db_session, without, script)

    await driver.say("Yes, please go ahead with the order")

    assert (await db_session.scalars(select(PaymentLink))).all() == []
    await db_session.refresh(quote)
    assert quote.accepted_at == NOW
    assert quote.payment_status is None
    assert "payment link" not in script.tool_results()[0].model_response_str()
