"""CRM sync: what the CRM should hold about a conversation, and pushing it there. Services only flush.

`request_sync` (called where the facts change: company details saved, a quote created, a quote paid) marks the
customer's contact link and the conversation's deal link pending in the caller's transaction; nothing talks to
the CRM there, so the chat never waits for it. After the commit the `sync_crm` job runs `sync_conversation`:
the contact first (the deal is associated with it), then the deal, each updated by its stored external id once
known. A transient failure (network, 429, 5xx) is retried with backoff; a refusal, or retries running out,
leaves the link failed with the CRM's answer for the admin. The phone number goes to the CRM (that is what a
CRM is for) but never into a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.crm import repository
from salesbot.crm.base import CrmContact, CrmDeal, CrmError, CrmProvider
from salesbot.kit.logging import get_logger
from salesbot.kit.phones import phone_from_chat_id
from salesbot.models import Conversation, CrmLink, CrmObject, CrmSyncState, Customer, PaymentStatus, Quote
from salesbot.settings import Settings

log = get_logger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
MAX_ERROR_LENGTH = 500


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... up to an hour."""
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


async def request_sync(
    session: AsyncSession,
    settings: Settings,
    *,
    customer_id: int,
    conversation_id: int,
    now: datetime,
    quote_id: int | None = None,
) -> bool:
    """Mark the customer's contact and the conversation's deal for syncing; False when no CRM is configured."""
    provider = settings.crm.provider
    if not provider:
        return False
    for object_type, scope, quote in (
        (CrmObject.CONTACT, repository.CONTACT_SCOPE, None),
        (CrmObject.DEAL, conversation_id, quote_id),
    ):
        await repository.mark_pending(
            session,
            provider=provider,
            object_type=object_type,
            customer_id=customer_id,
            conversation_id=scope,
            quote_id=quote,
            now=now,
        )
    return True


def contact_of(customer: Customer) -> CrmContact:
    return CrmContact(
        name=customer.name,
        company=customer.company,
        email=customer.email,
        phone=phone_from_chat_id(customer.chat_id) or None,
    )


def deal_of(conversation: Conversation, customer: Customer, quote: Quote | None) -> CrmDeal:
    who = customer.company or customer.name or "WhatsApp customer"
    if quote is not None:
        products = tuple(f"{item['sku']} {item['name']} x {item['qty']}" for item in quote.items)
    else:
        selected = (conversation.facts or {}).get("selected", [])
        products = tuple(f"{item['sku']} x {item['qty']}" for item in selected if isinstance(item, dict))
    return CrmDeal(
        name=f"{who} - WhatsApp #{conversation.id}"[:200],
        stage=conversation.sales_stage,
        paid=quote is not None and quote.payment_status is PaymentStatus.PAID,
        amount=quote.total if quote is not None else None,
        currency=quote.currency if quote is not None else None,
        products=products,
    )


@dataclass(frozen=True)
class SyncOutcome:
    # synced, retry (a transient failure, due again after `retry_in`), failed, waiting (backing off), skipped.
    result: str
    retry_in: timedelta | None = None


async def sync_conversation(
    session: AsyncSession, settings: Settings, provider: CrmProvider, conversation_id: int, *, now: datetime
) -> SyncOutcome:
    """Push the conversation's pending contact and deal to the CRM (flushes; the job commits)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return SyncOutcome("skipped")
    customer = await session.get_one(Customer, conversation.customer_id)
    contact, deal = await repository.lock_links(
        session, provider=provider.name, customer_id=customer.id, conversation_id=conversation_id
    )
    if contact is None or deal is None:
        return SyncOutcome("skipped")
    pending = [link for link in (contact, deal) if link.state is CrmSyncState.PENDING]
    if not pending:
        return SyncOutcome("skipped")
    waiting = [link.next_attempt_at for link in pending if link.next_attempt_at and link.next_attempt_at > now]
    if len(waiting) == len(pending):
        return SyncOutcome("waiting", min(waiting) - now)
    try:
        if contact.state is CrmSyncState.PENDING or contact.external_id is None:
            contact.external_id = await provider.upsert_contact(contact_of(customer), contact.external_id)
            _synced(contact, now)
        if deal.state is CrmSyncState.PENDING or deal.external_id is None:
            quote = await repository.deal_quote(session, conversation_id, deal.quote_id)
            deal.external_id = await provider.upsert_deal(
                deal_of(conversation, customer, quote), deal.external_id, contact.external_id
            )
            deal.quote_id = quote.id if quote is not None else None
            _synced(deal, now)
    except CrmError as exc:
        return _failed([link for link in pending if link.state is CrmSyncState.PENDING], exc, provider.name, now)
    await session.flush()
    log.info("crm.synced", provider=provider.name, conversation=conversation_id)
    return SyncOutcome("synced")


def _synced(link: CrmLink, now: datetime) -> None:
    link.state, link.synced_at, link.last_error, link.next_attempt_at = CrmSyncState.SYNCED, now, None, None


def _failed(links: list[CrmLink], exc: CrmError, provider: str, now: datetime) -> SyncOutcome:
    retry_in: timedelta | None = None
    for link in links:
        link.attempts += 1
        link.last_error = exc.message[:MAX_ERROR_LENGTH]
        if exc.retryable and link.attempts < MAX_ATTEMPTS:
            delay = backoff(link.attempts)
            link.next_attempt_at = now + delay
            retry_in = delay if retry_in is None else min(retry_in, delay)
        else:
            link.state, link.next_attempt_at = CrmSyncState.FAILED, None
    if retry_in is not None:
        log.warning("crm.sync_retrying", provider=provider, error=type(exc).__name__)
        return SyncOutcome("retry", retry_in)
    log.warning("crm.sync_failed", provider=provider, error=type(exc).__name__)
    return SyncOutcome("failed")
