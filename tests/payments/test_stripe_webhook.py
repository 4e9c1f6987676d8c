"""POST /webhooks/stripe through the real app: signatures, paid/expired/failed sessions, redelivered events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.app import create_app
from salesbot.models import (
    Alert,
    AlertKind,
    Conversation,
    Direction,
    Message,
    PaymentEvent,
    PaymentLink,
    PaymentStatus,
    Quote,
    SalesStage,
)
from salesbot.models._columns import utcnow
from salesbot.payments import service
from salesbot.payments.stripe import StripeCheckout, compute_signature
from salesbot.settings import Settings
from tests.fakes.stripe_api import FakeStripe, sign
from tests.payments.conftest import WEBHOOK_SECRET, Quoted, quoted_conversation


async def open_link(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe, **kw: Any
) -> tuple[Quoted, PaymentLink]:
    """A quoted conversation whose customer accepted and got a payment link (the session exists at the fake)."""
    quoted = await quoted_conversation(sessionmaker, [("CH-100", 10)], discount="10", **kw)
    async with sessionmaker() as session:
        acceptance = await service.accept_quote(session, settings, conversation_id=quoted.conversation_id, now=utcnow())
        assert acceptance is not None
        assert acceptance.link_id is not None
        async with httpx.AsyncClient() as http:
            provider = StripeCheckout(http=http, api_key=settings.stripe.api_key.get_secret_value(), api_url=stripe.url)
            assert (await service.create_link(session, settings, provider, acceptance.link_id)).result == "sent"
        await session.commit()
        link = await session.get_one(PaymentLink, acceptance.link_id)
    return quoted, link


async def post(client: httpx.AsyncClient, event: dict[str, Any], *, signature: str | None = None) -> httpx.Response:
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    headers["Stripe-Signature"] = signature if signature is not None else sign(body, WEBHOOK_SECRET)
    return await client.post("/webhooks/stripe", content=body, headers=headers)


async def state(sessionmaker: async_sessionmaker[AsyncSession], quoted: Quoted) -> dict[str, Any]:
    async with sessionmaker() as session:
        quote = await session.get_one(Quote, quoted.quote_id)
        conversation = await session.get_one(Conversation, quoted.conversation_id)
        links = (
            await session.scalars(select(PaymentLink).where(PaymentLink.quote_id == quote.id).order_by(PaymentLink.id))
        ).all()
        thanks = await session.scalar(
            select(func.count()).where(
                Message.conversation_id == conversation.id,
                Message.direction == Direction.OUTBOUND,
                Message.idempotency_key.like("payment-received:%"),
            )
        )
        events = await session.scalar(select(func.count()).select_from(PaymentEvent))
    return {
        "quote": (quote.payment_status, quote.paid_at is not None),
        "links": [link.status for link in links],
        "stage": conversation.sales_stage,
        "attention": conversation.needs_attention,
        "thanks": thanks,
        "events": events,
    }


async def test_a_paid_session_marks_the_quote_paid_closes_and_thanks_once(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe
) -> None:
    quoted, link = await open_link(sessionmaker, settings, stripe)
    assert link.checkout_session_id is not None
    event = stripe.event(link.checkout_session_id)

    response = await post(client, event)

    assert response.status_code == 200
    assert response.json() == {"ok": True, "outcome": "paid", "duplicate": False}
    after = await state(sessionmaker, quoted)
    assert after["quote"] == (PaymentStatus.PAID, True)
    assert after["links"] == [PaymentStatus.PAID]
    assert after["stage"] is SalesStage.CLOSING
    assert after["thanks"] == 1
    quote = (await client.get(f"/api/v1/quotes/{quoted.quote_id}")).json()
    assert quote["payment_status"] == "paid"
    assert quote["paid_at"] is not None
    detail = (await client.get(f"/api/v1/conversations/{quoted.conversation_id}")).json()
    assert detail["quotes"][0]["payment_status"] == "paid"
    assert detail["stage"] == "closing"
    thanks = [m for m in detail["messages"] if m["text"].startswith("Thank you")]
    assert f"#{quoted.quote_id}" in thanks[0]["text"]

    # Stripe retries: the same event again changes nothing and is acknowledged.
    again = await post(client, event)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert await state(sessionmaker, quoted) == after
    # The team hears about the payment once, whatever Stripe redelivers.
    async with sessionmaker() as session:
        alerts = (await session.scalars(select(Alert).where(Alert.conversation_id == quoted.conversation_id))).all()
    assert [(alert.kind, alert.excerpt) for alert in alerts] == [
        (AlertKind.PAYMENT_RECEIVED, f"Quote {quoted.quote_id} paid: {quote['total']} {quote['currency']}")
    ]


async def test_the_thanks_is_in_the_conversation_language(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe
) -> None:
    quoted, link = await open_link(sessionmaker, settings, stripe, language="ru")
    assert link.checkout_session_id is not None
    assert (await post(client, stripe.event(link.checkout_session_id))).status_code == 200
    async with sessionmaker() as session:
        texts = (
            await session.scalars(
                select(Message.text).where(Message.conversation_id == quoted.conversation_id).order_by(Message.id)
            )
        ).all()
    assert texts[0].startswith("Чтобы безопасно оплатить")
    assert texts[1].startswith("Спасибо!")


async def test_bad_missing_or_stale_signatures_are_refused_and_change_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe
) -> None:
    quoted, link = await open_link(sessionmaker, settings, stripe)
    assert link.checkout_session_id is not None
    event = stripe.event(link.checkout_session_id)
    body = json.dumps(event).encode()
    before = await state(sessionmaker, quoted)
    now = int(time.time())
    cases = {
        "wrong secret": sign(body, "whsec_someone_else"),
        "no v1": f"t={now}",
        "no timestamp": f"v1={compute_signature(WEBHOOK_SECRET, now, body)}",
        "too old": sign(body, WEBHOOK_SECRET, timestamp=now - 301),
        "from the future": sign(body, WEBHOOK_SECRET, timestamp=now + 301),
        "other body": sign(body + b" ", WEBHOOK_SECRET),
    }
    for case, header in cases.items():
        response = await post(client, event, signature=header)
        assert response.status_code == 400, case
        assert "Stripe-Signature" in response.json()["detail"], case
    missing = await client.post("/webhooks/stripe", content=body, headers={"Content-Type": "application/json"})
    assert (missing.status_code, missing.json()["detail"]) == (400, "missing Stripe-Signature header")
    assert await state(sessionmaker, quoted) == before

    # While the endpoint secret is rolled, Stripe signs with both: one matching v1 is enough.
    rolled = f"{sign(body, 'whsec_old_secret_0000')},v1={compute_signature(WEBHOOK_SECRET, now, body)}"
    assert (await post(client, event, signature=rolled)).status_code == 200


async def test_a_signed_body_that_is_not_an_event_is_a_400(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for body in (b"not json", b"[]", json.dumps({"object": "event", "id": "evt_1"}).encode()):
        response = await client.post(
            "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
        )
        assert response.status_code == 400
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PaymentEvent)) == 0


async def test_expired_and_failed_sessions_are_recorded_for_managers(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe
) -> None:
    quoted, link = await open_link(sessionmaker, settings, stripe)
    assert link.checkout_session_id is not None
    assert (await post(client, stripe.event(link.checkout_session_id, "checkout.session.expired"))).json()[
        "outcome"
    ] == "expired"
    after = await state(sessionmaker, quoted)
    assert after["quote"] == (PaymentStatus.EXPIRED, False)
    assert after["stage"] is SalesStage.QUOTING
    assert after["thanks"] == 0

    other, failed = await open_link(sessionmaker, settings, stripe, chat_id="+15550100888")
    assert failed.checkout_session_id is not None
    event = stripe.event(failed.checkout_session_id, "checkout.session.async_payment_failed")
    assert (await post(client, event)).json()["outcome"] == "failed"
    assert (await state(sessionmaker, other))["quote"] == (PaymentStatus.FAILED, False)
    async with sessionmaker() as session:
        recorded = (await session.scalars(select(PaymentEvent.type).order_by(PaymentEvent.id))).all()
    assert recorded == ["checkout.session.expired", "checkout.session.async_payment_failed"]


async def test_a_payment_of_another_amount_is_not_marked_paid(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe
) -> None:
    quoted, link = await open_link(sessionmaker, settings, stripe)
    assert link.checkout_session_id is not None
    response = await post(client, stripe.event(link.checkout_session_id, amount_total=100))
    assert response.json()["outcome"] == "amount_mismatch"
    after = await state(sessionmaker, quoted)
    assert after["quote"] == (PaymentStatus.OPEN, False)
    assert after["attention"] is True
    assert after["thanks"] == 0


async def test_the_verbatim_stripe_event_for_an_unknown_session_is_acknowledged(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = (Path(__file__).parent.parent / "fixtures" / "stripe" / "checkout.session.completed.json").read_bytes()
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    )
    assert response.json() == {"ok": True, "outcome": "unknown_session", "duplicate": False}


async def test_without_a_webhook_secret_the_endpoint_is_not_there(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: Any
) -> None:
    unconfigured = settings.model_copy(
        update={"stripe": settings.stripe.model_copy(update={"webhook_secret": SecretStr("")})}
    )
    app = create_app(unconfigured)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        response = await http.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 404


async def test_a_late_event_about_an_old_link_leaves_the_newer_link_in_charge(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stripe: FakeStripe
) -> None:
    quoted, old = await open_link(sessionmaker, settings, stripe)
    assert old.checkout_session_id is not None
    assert (await post(client, stripe.event(old.checkout_session_id, "checkout.session.expired"))).status_code == 200
    # The customer accepts again: a new link (a new idempotency key, a new session).
    async with sessionmaker() as session:
        again = await service.accept_quote(session, settings, conversation_id=quoted.conversation_id, now=utcnow())
        assert again is not None
        assert again.link_id not in (None, old.id)
        async with httpx.AsyncClient() as http:
            provider = StripeCheckout(http=http, api_key=settings.stripe.api_key.get_secret_value(), api_url=stripe.url)
            assert (await service.create_link(session, settings, provider, again.link_id)).result == "sent"
        await session.commit()
    assert len(stripe.sessions) == 2

    late = stripe.event(old.checkout_session_id, "checkout.session.async_payment_failed")
    assert (await post(client, late)).json()["outcome"] == "failed"
    after = await state(sessionmaker, quoted)
    assert after["quote"] == (PaymentStatus.OPEN, False)
    assert after["links"] == [PaymentStatus.FAILED, PaymentStatus.OPEN]
