"""Acceptance: a WhatsApp conversation through the real pipeline (webhook -> worker -> agent -> fake provider)
reaches a quote with catalog prices, with the sales stage stored at each step. The agent is the production one
(`SalesAgentService` with the offline responder, the real hybrid search and the shipped playbook)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from salesbot.agent.service import SalesAgentService
from salesbot.db import unit_of_work
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.seed import seed_demo_data
from salesbot.models import Conversation, Customer, Direction, Product, Quote, SalesStage
from tests.fakes.pipeline import Pipeline

CHAT = "971501234567"


async def stored(pipeline: Pipeline) -> tuple[Conversation, Customer, list[Quote]]:
    async with pipeline.resources.sessionmaker() as session:
        conversation = (await session.scalars(select(Conversation))).one()
        customer = (await session.scalars(select(Customer))).one()
        quotes = list(await session.scalars(select(Quote).order_by(Quote.id)))
        return conversation, customer, quotes


async def test_a_whatsapp_conversation_reaches_a_quote_with_catalog_prices(pipeline: Pipeline) -> None:
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        await seed_demo_data(session, get_embedder(pipeline.resources.settings))
    pipeline.worker.generator = SalesAgentService()

    async def say(text: str) -> str:
        before = len(pipeline.wazzup_api.sent)
        response = await pipeline.wazzup_text(CHAT, text)
        assert response.status_code == 200
        await pipeline.worker.drain()
        sent = pipeline.wazzup_api.sent[before:]
        assert sent, f"no reply to {text!r}"
        return "\n".join(message.text or "" for message in sent)

    reply = await say("Hello, we need a small laser printer for our office")
    conversation, _, _ = await stored(pipeline)
    assert conversation.sales_stage is SalesStage.SOLUTION
    assert "AED" in reply

    reply = await say("I'll take 3 HP-LJM211DW please")
    conversation, _, _ = await stored(pipeline)
    assert conversation.sales_stage is SalesStage.COMPANY_DETAILS
    assert "name" in reply

    reply = await say("My name is John Smith, company Acme Trading LLC, email john.smith@acme-trading.example")
    conversation, customer, quotes = await stored(pipeline)
    assert conversation.sales_stage is SalesStage.QUOTING
    assert (customer.name, customer.company, customer.email) == (
        "John Smith",
        "Acme Trading LLC",
        "john.smith@acme-trading.example",
    )
    async with pipeline.resources.sessionmaker() as session:
        price = await session.scalar(select(Product.price).where(Product.sku == "HP-LJM211DW"))
    assert price == Decimal("649.00")
    [quote] = quotes
    assert (quote.subtotal, quote.total, quote.currency) == (price * 3, price * 3, "AED")
    assert quote.items[0]["unit_price"] == str(price)
    assert f"{price * 3} AED" in reply
    assert "HP-LJM211DW" in reply

    reply = await say("Great, I confirm the order")
    conversation, _, _ = await stored(pipeline)
    assert conversation.sales_stage is SalesStage.CLOSING
    assert [(h["from_stage"], h["to_stage"]) for h in conversation.facts["stage_history"]] == [
        ("greeting", "qualifying"),
        ("qualifying", "needs_analysis"),
        ("needs_analysis", "solution"),
        ("solution", "company_details"),
        ("company_details", "quoting"),
        ("quoting", "closing"),
    ]

    # Every bot reply carries its turn record; the customer's e-mail was never shown to a model in the clear.
    outbound = await pipeline.messages(direction=Direction.OUTBOUND)
    # The quote's PDF followed the quote message as a further part of that reply (the record is on the first).
    assert [message.content_type for message in outbound] == ["text"] * 3 + ["document"] + ["text"]
    outbound = [message for message in outbound if message.part_index == 0]
    assert {message.model for message in outbound} == {"offline"}
    assert all(message.tool_calls for message in outbound)
    assert "john.smith@acme-trading.example" in conversation.pii_map.values()
    assert conversation.turn_count == 4
