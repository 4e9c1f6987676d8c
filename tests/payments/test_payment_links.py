"""Payment links: one Stripe Checkout Session per acceptance, whose total is the quote's, sent through the outbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.kit.currency import to_minor
from salesbot.models import Conversation, Direction, Message, PaymentLink, PaymentStatus, Quote
from salesbot.models._columns import utcnow
from salesbot.payments import service
from salesbot.payments.base import CheckoutRequest, PaymentRejectedError
from salesbot.payments.tasks import checkout_provider, schedule_pending_links
from salesbot.resources import Resources
from tests.conftest import WorkerRunner
from tests.fakes.stripe_api import FakeStripe
from tests.payments.conftest import quoted_conversation

SESSIONS = "/v1/checkout/sessions"
COUPONS = "/v1/coupons"


async def accept(resources: Resources, conversation_id: int) -> service.Acceptance:
    async with resources.sessionmaker() as session:
        acceptance = await service.accept_quote(
            session, resources.settings, conversation_id=conversation_id, now=utcnow()
        )
        await session.commit()
    assert acceptance is not None
    return acceptance


async def create(resources: Resources, link_id: int) -> service.LinkOutcome:
    async with resources.sessionmaker() as session:
        outcome = await service.create_link(session, resources.settings, checkout_provider(resources), link_id)
        await session.commit()
    return outcome


async def outbound(sessionmaker: async_sessionmaker[AsyncSession], conversation_id: int) -> list[Message]:
    async with sessionmaker() as session:
        stmt = select(Message).where(
            Message.conversation_id == conversation_id, Message.direction == Direction.OUTBOUND
        )
        return list((await session.scalars(stmt.order_by(Message.id))).all())


async def test_accepted_quote_gets_a_checkout_session_whose_total_is_the_quote_total(
    resources: Resources, stripe: FakeStripe, run_worker: WorkerRunner
) -> None:
    # 10 chairs qualify for 10 %: 2499.90 - 249.99 = 2249.91 USD.
    quoted = await quoted_conversation(resources.sessionmaker, [("CH-100", 10)], discount="10")
    acceptance = await accept(resources, quoted.conversation_id)
    assert acceptance.link_id is not None

    # The turn job enqueues the link's job after its commit; the worker creates the session and sends the link.
    await schedule_pending_links(resources, quoted.conversation_id)
    await run_worker()

    [coupon_request] = stripe.created(COUPONS)
    assert coupon_request.form == {
        "amount_off": "24999",
        "currency": "usd",
        "duration": "once",
        "max_redemptions": "1",
        "name": "Quote discount",
    }
    [request] = stripe.created(SESSIONS)
    coupon_id = next(iter(stripe.coupons))
    form = request.form
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][unit_amount]"] == "24999"
    assert form["line_items[0][price_data][product_data][name]"] == "CH-100 Ergonomic chair"
    assert form["line_items[0][quantity]"] == "10"
    assert form["discounts[0][coupon]"] == coupon_id
    assert form["success_url"].startswith("https://bot.example.test/payments/success")
    assert form["cancel_url"].startswith("https://bot.example.test/payments/cancelled")
    assert form["metadata[quote_id]"] == str(quoted.quote_id)
    assert request.headers["idempotency-key"] == f"salesbot-quote-{quoted.quote_id}-acceptance-1"
    [checkout] = stripe.sessions.values()
    async with resources.sessionmaker() as session:
        quote = await session.get_one(Quote, quoted.quote_id)
        link = await session.get_one(PaymentLink, acceptance.link_id)
    assert quote.total == Decimal("2249.91")
    assert checkout["amount_total"] == to_minor(quote.total, "USD") == 224991
    assert (link.status, quote.payment_status) == (PaymentStatus.OPEN, PaymentStatus.OPEN)
    assert (link.checkout_session_id, link.url) == (checkout["id"], checkout["url"])
    [message] = await outbound(resources.sessionmaker, quoted.conversation_id)
    assert checkout["url"] in message.text
    assert f"#{quoted.quote_id}" in message.text
    assert "2249.91 USD" in message.text
    assert message.idempotency_key == f"payment-link:{link.id}:0"


async def test_a_repeated_job_or_acceptance_creates_no_second_session(resources: Resources, stripe: FakeStripe) -> None:
    quoted = await quoted_conversation(resources.sessionmaker, [("DK-200", 2)])
    first = await accept(resources, quoted.conversation_id)
    assert first.link_id is not None
    assert (await create(resources, first.link_id)).result == "sent"

    # The job runs again (the sweep, a redelivered job) and the customer says "yes" again: nothing new.
    assert (await create(resources, first.link_id)).result == "skipped"
    again = await accept(resources, quoted.conversation_id)
    assert again.link_id == first.link_id
    assert len(stripe.sessions) == 1
    assert len(await outbound(resources.sessionmaker, quoted.conversation_id)) == 1
    assert stripe.created(COUPONS) == []  # no discount, no coupon


async def test_a_lost_answer_is_retried_with_the_same_key_and_gets_the_same_session(
    resources: Resources, stripe: FakeStripe
) -> None:
    quoted = await quoted_conversation(resources.sessionmaker, [("CH-100", 5)], discount="5")
    acceptance = await accept(resources, quoted.conversation_id)
    assert acceptance.link_id is not None
    stripe.fail_next.append((500, {"error": {"type": "api_error", "message": "An unknown error occurred"}}))

    assert (await create(resources, acceptance.link_id)).result == "retry"
    async with resources.sessionmaker() as session:
        link = await session.get_one(PaymentLink, acceptance.link_id)
        assert (link.status, link.attempts) == (PaymentStatus.PENDING, 1)
        assert "api_error" in (link.error or "")
        # Stripe created the session but its answer was lost: the job does not know the id.
        request = service.checkout_request(link, await session.get_one(Quote, quoted.quote_id), resources.settings)
    lost = await checkout_provider(resources).create_checkout(request)

    assert (await create(resources, acceptance.link_id)).result == "sent"
    assert list(stripe.sessions) == [lost.id]
    async with resources.sessionmaker() as session:
        assert (await session.get_one(PaymentLink, acceptance.link_id)).checkout_session_id == lost.id
    keys = {r.headers["idempotency-key"] for r in stripe.created(SESSIONS)}
    assert keys == {f"salesbot-quote-{quoted.quote_id}-acceptance-1"}


async def test_same_key_with_other_parameters_is_refused_like_stripe_does(
    resources: Resources, stripe: FakeStripe
) -> None:
    quoted = await quoted_conversation(resources.sessionmaker, [("DK-200", 1)])
    acceptance = await accept(resources, quoted.conversation_id)
    assert acceptance.link_id is not None
    async with resources.sessionmaker() as session:
        link = await session.get_one(PaymentLink, acceptance.link_id)
        request = service.checkout_request(link, await session.get_one(Quote, quoted.quote_id), resources.settings)
    provider = checkout_provider(resources)
    first = await provider.create_checkout(request)
    assert (await provider.create_checkout(request)).id == first.id
    other = CheckoutRequest(**{**request.__dict__, "success_url": "https://bot.example.test/elsewhere"})
    with pytest.raises(PaymentRejectedError, match="idempotency_error"):
        await provider.create_checkout(other)
    assert len(stripe.sessions) == 1


@pytest.mark.parametrize(
    ("lines", "discount", "currency", "unit_amount", "total"),
    [
        # Zero-decimal: yen are whole units; 5 % of 6170 JPY is 308.5, rounded to a payable 309.
        ([("JP-300", 5)], "5", "jpy", "1234", 5861),
        # Three-decimal: 12.35 KWD is 12350 fils (Stripe wants the last digit 0).
        ([("KW-400", 2)], "0", "kwd", "12350", 24700),
    ],
)
async def test_minor_units_follow_the_currency(
    resources: Resources,
    stripe: FakeStripe,
    lines: list[tuple[str, int]],
    discount: str,
    currency: str,
    unit_amount: str,
    total: int,
) -> None:
    quoted = await quoted_conversation(resources.sessionmaker, lines, discount=discount)
    acceptance = await accept(resources, quoted.conversation_id)
    assert acceptance.link_id is not None
    assert (await create(resources, acceptance.link_id)).result == "sent"
    [request] = stripe.created(SESSIONS)
    assert request.form["line_items[0][price_data][currency]"] == currency
    assert request.form["line_items[0][price_data][unit_amount]"] == unit_amount
    [checkout] = stripe.sessions.values()
    async with resources.sessionmaker() as session:
        quote = await session.get_one(Quote, quoted.quote_id)
    assert checkout["amount_total"] == total == to_minor(quote.total, currency)


async def test_a_refused_session_is_recorded_and_flags_the_conversation(
    resources: Resources, stripe: FakeStripe
) -> None:
    quoted = await quoted_conversation(resources.sessionmaker, [("DK-200", 1)])
    acceptance = await accept(resources, quoted.conversation_id)
    assert acceptance.link_id is not None
    stripe.fail_next.append((400, {"error": {"type": "invalid_request_error", "message": "Invalid currency: usd"}}))

    assert (await create(resources, acceptance.link_id)).result == "failed"
    async with resources.sessionmaker() as session:
        link = await session.get_one(PaymentLink, acceptance.link_id)
        quote = await session.get_one(Quote, quoted.quote_id)
        conversation = await session.get_one(Conversation, quoted.conversation_id)
    assert (link.status, quote.payment_status) == (PaymentStatus.FAILED, PaymentStatus.FAILED)
    assert "Invalid currency" in (link.error or "")
    assert conversation.needs_attention
    assert await outbound(resources.sessionmaker, quoted.conversation_id) == []
    # Accepting again after a refusal makes a new attempt with a new key.
    again = await accept(resources, quoted.conversation_id)
    assert again.link_id not in (None, acceptance.link_id)
