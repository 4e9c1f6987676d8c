"""The whole path: a customer's "yes" on WhatsApp -> the agent accepts the quote -> the link reaches the customer
through the outbox -> Stripe reports the payment -> the customer is thanked. Real app, worker, database, Redis;
Wazzup and Stripe are fakes at the HTTP boundary, the LLM a scripted model."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from salesbot.agent.playbook import load_playbook
from salesbot.agent.service import SalesAgentService
from salesbot.models import Channel, Conversation, Customer, PaymentLink, PaymentStatus, Product, Quote, SalesStage
from salesbot.sales import quotes as quote_service
from salesbot.settings import StripeSettings
from tests.agent.scripted import Script, call
from tests.fakes.pipeline import Pipeline
from tests.fakes.stripe_api import FakeStripe, sign
from tests.payments.conftest import WEBHOOK_SECRET

CHAT = "79011234567"


@pytest.fixture
def pipeline_overrides(stripe: FakeStripe) -> dict[str, dict[str, Any]]:
    settings = StripeSettings(
        api_url=stripe.url, api_key=SecretStr(stripe.api_key), webhook_secret=SecretStr(WEBHOOK_SECRET)
    )
    return {"root": {"stripe": settings}}


async def quoting_customer(pipeline: Pipeline) -> tuple[int, int]:
    async with pipeline.resources.sessionmaker() as session:
        session.add(Product(sku="DK-200", name="Standing desk", price=Decimal("649.00"), currency="USD", stock=5))
        customer = Customer(channel=Channel.WAZZUP, chat_id=CHAT, name="Ivan", company="Acme")
        session.add(customer)
        await session.flush()
        conversation = Conversation(
            customer_id=customer.id, channel=Channel.WAZZUP, sales_stage=SalesStage.QUOTING, language="en"
        )
        session.add(conversation)
        await session.flush()
        quote, _ = await quote_service.create_quote(
            session, load_playbook(), conversation.id, [quote_service.LineRequest("DK-200", 2)]
        )
        conversation.facts = {"selected": [{"sku": "DK-200", "qty": 2}], "last_quote_id": quote.id}
        await session.commit()
        return conversation.id, quote.id


async def test_yes_on_whatsapp_gets_a_payment_link_and_the_payment_a_thank_you(
    pipeline: Pipeline, stripe: FakeStripe
) -> None:
    assert pipeline.router is not None
    pipeline.router.route(host="127.0.0.1").pass_through()  # the Stripe fake is a real local server
    conversation_id, quote_id = await quoting_customer(pipeline)
    script = Script([[call("advance_stage", to_stage="closing", reason="the customer accepted the quote")], "Great!"])
    pipeline.worker.generator = SalesAgentService(model=script.model)

    await pipeline.wazzup_text(CHAT, "Yes, I accept the quote")
    await pipeline.worker.drain()

    [checkout] = stripe.sessions.values()
    assert checkout["amount_total"] == 129800
    sent = [message.text for message in pipeline.wazzup_api.sent]
    assert sent[0] == "Great!"
    assert sent[1].startswith(f"To pay quote #{quote_id} (1298.00 USD) securely online")
    assert sent[1].endswith(checkout["url"])

    body = json.dumps(stripe.event(checkout["id"])).encode()
    response = await pipeline.client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    )
    assert response.json()["outcome"] == "paid"
    await pipeline.worker.drain()

    assert pipeline.wazzup_api.sent[-1].text.startswith(
        f"Thank you! We have received your payment for quote #{quote_id}"
    )
    assert len(pipeline.wazzup_api.sent) == 3
    async with pipeline.resources.sessionmaker() as session:
        quote = await session.get_one(Quote, quote_id)
        conversation = await session.get_one(Conversation, conversation_id)
        [link] = (await session.scalars(select(PaymentLink))).all()
    assert (quote.payment_status, link.status) == (PaymentStatus.PAID, PaymentStatus.PAID)
    assert quote.accepted_at is not None
    assert quote.paid_at is not None
    assert conversation.sales_stage is SalesStage.CLOSING
