"""The admin shows payment links and CRM sync per conversation: refused and expired links, CRM errors."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.models import CrmLink, CrmObject, CrmSyncState, PaymentLink, PaymentStatus, Quote
from salesbot.models._columns import utcnow
from tests.payments.conftest import Quoted, quoted_conversation


async def commerce_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[Quoted, Quoted]:
    mine = await quoted_conversation(sessionmaker, [("CH-100", 2)], chat_id="+15550100301")
    other = await quoted_conversation(sessionmaker, [("DK-200", 1)], chat_id="+15550100302")
    now = utcnow()
    async with sessionmaker() as session:
        quote = await session.get_one(Quote, mine.quote_id)
        quote.accepted_at, quote.payment_status, quote.paid_at = now, PaymentStatus.PAID, now
        session.add_all(
            [
                PaymentLink(
                    quote_id=mine.quote_id,
                    conversation_id=mine.conversation_id,
                    status=PaymentStatus.EXPIRED,
                    idempotency_key="k-1",
                    amount_minor=49998,
                    currency="USD",
                    error="the Checkout Session expired unpaid",
                ),
                PaymentLink(
                    quote_id=mine.quote_id,
                    conversation_id=mine.conversation_id,
                    status=PaymentStatus.FAILED,
                    idempotency_key="k-2",
                    amount_minor=49998,
                    currency="USD",
                    error="Stripe answered 400: invalid_request_error: Invalid currency: usd",
                ),
                PaymentLink(
                    quote_id=other.quote_id,
                    conversation_id=other.conversation_id,
                    status=PaymentStatus.OPEN,
                    idempotency_key="k-3",
                    amount_minor=64900,
                    currency="USD",
                ),
                CrmLink(
                    provider="hubspot",
                    object_type=CrmObject.CONTACT,
                    customer_id=mine.customer_id,
                    conversation_id=0,
                    external_id="51",
                    state=CrmSyncState.SYNCED,
                    synced_at=now,
                ),
                CrmLink(
                    provider="hubspot",
                    object_type=CrmObject.DEAL,
                    customer_id=mine.customer_id,
                    conversation_id=mine.conversation_id,
                    state=CrmSyncState.FAILED,
                    attempts=3,
                    last_error="HubSpot answered 400: Property values were not valid",
                    next_attempt_at=now + timedelta(minutes=5),
                ),
                CrmLink(
                    provider="hubspot",
                    object_type=CrmObject.DEAL,
                    customer_id=other.customer_id,
                    conversation_id=other.conversation_id,
                    external_id="other-deal-77",
                    state=CrmSyncState.SYNCED,
                ),
            ]
        )
        await session.commit()
    return mine, other


async def test_payments_and_crm_sync_are_listed_per_conversation(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mine, _other = await commerce_rows(sessionmaker)

    payments = await manager.get(f"/admin/payment-link/list?conversation={mine.conversation_id}")
    assert payments.status_code == 200
    assert "expired" in payments.text
    assert "Invalid currency" in payments.text
    assert "649.00" not in payments.text  # the other conversation's link
    crm = await manager.get(f"/admin/crm-link/list?conversation={mine.conversation_id}")
    assert crm.status_code == 200
    assert "Property values were not valid" in crm.text
    assert ">51<" in crm.text  # the customer's contact, shared by their conversations
    assert "other-deal-77" not in crm.text
    failed = await manager.get("/admin/crm-link/list?state=failed")
    assert "Property values were not valid" in failed.text
    assert "other-deal-77" not in failed.text

    page = await manager.get(f"/admin/conversation/details/{mine.conversation_id}")
    assert page.status_code == 200
    assert "payment: <strong>paid</strong>" in page.text
    assert f"/admin/payment-link/list?conversation={mine.conversation_id}" in page.text
    assert f"/admin/crm-link/list?conversation={mine.conversation_id}" in page.text


async def test_a_malformed_conversation_filter_is_a_400(manager: httpx.AsyncClient) -> None:
    for view in ("payment-link", "crm-link"):
        for value in ("abc", "-1", "0", "99999999999999999999", "1\x00"):
            response = await manager.get(f"/admin/{view}/list", params={"conversation": value})
            assert response.status_code == 400, (view, value)
