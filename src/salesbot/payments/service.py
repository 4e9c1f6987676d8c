"""Payment links for accepted quotes, and what a payment provider's events change. Services only flush.

1. Acceptance (`accept_quote`, called when the conversation moves from quoting to closing): the quote gets
   `accepted_at` and, with Stripe configured, a pending `PaymentLink` with its own idempotency key, in the
   caller's transaction. After the commit the `create_payment_link` job runs `create_link`.
2. `create_link` asks the provider for a Checkout Session whose lines are the quote's lines (amounts in the
   currency's minor units) and whose discount is the quote's discount amount, checks that Stripe's total is the
   quote's total, and writes the link message into the outbox (delivered like every reply). A refused session
   is recorded on the link (admin) and flags the conversation for a manager.
3. `handle_event` applies a verified webhook event once per Stripe event id: a completed, paid session marks the
   link and the quote paid, moves the conversation to closing under the stage rules and thanks the customer
   through the outbox; an expired session or a failed delayed payment is recorded on the link and the quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.playbook import FixedMessages, LocalizedText, load_playbook
from salesbot.agent.repository import quote_count
from salesbot.agent.stages import FunnelState, check_transition
from salesbot.alerts import service as alerts
from salesbot.crm import service as crm_service
from salesbot.kit.currency import MinorUnitError, to_minor
from salesbot.kit.logging import get_logger
from salesbot.models import Author, Conversation, PaymentEvent, PaymentLink, PaymentStatus, Quote, SalesStage
from salesbot.outbox.service import write_outbound
from salesbot.outbox.splitting import part_limit
from salesbot.payments import repository
from salesbot.payments.base import (
    CheckoutLine,
    CheckoutProvider,
    CheckoutRequest,
    PaymentProviderError,
    PaymentRejectedError,
)
from salesbot.payments.stripe import StripeEvent
from salesbot.sales.quotes import money
from salesbot.settings import Settings

log = get_logger(__name__)

# Transient failures of one link's creation before it is given up (failed, shown to managers).
MAX_LINK_ATTEMPTS = 6
MAX_ERROR_LENGTH = 500
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
EXPIRED_EVENT = "checkout.session.expired"
FAILED_EVENT = "checkout.session.async_payment_failed"


@dataclass(frozen=True)
class Acceptance:
    quote_id: int
    # A payment link is on its way to the customer (Stripe configured and the quote payable).
    link_id: int | None


async def accept_quote(
    session: AsyncSession, settings: Settings, *, conversation_id: int, now: datetime, quote_id: int | None = None
) -> Acceptance | None:
    """Record that the customer accepted the quote (the conversation's newest unless `quote_id`); with Stripe
    configured, a pending payment link for it. None when the conversation has no quote. Flushes only."""
    quote = await (
        session.get(Quote, quote_id) if quote_id is not None else repository.latest_quote(session, conversation_id)
    )
    if quote is None or quote.conversation_id != conversation_id:
        return None
    quote.accepted_at = now
    if not settings.stripe.enabled or quote.payment_status is PaymentStatus.PAID:
        await session.flush()
        return Acceptance(quote.id, None)
    live = await repository.live_link(session, quote.id)
    if live is not None:
        # Accepted again while its link is on its way or still payable: the customer has (or gets) that one.
        await session.flush()
        return Acceptance(quote.id, live.id)
    number = await repository.count_links(session, quote.id) + 1
    link = PaymentLink(
        quote_id=quote.id,
        conversation_id=conversation_id,
        status=PaymentStatus.PENDING,
        # One key per acceptance: a retried creation of this link gets Stripe's first session back; a later
        # acceptance (after the link expired) gets a new session.
        idempotency_key=f"salesbot-quote-{quote.id}-acceptance-{number}",
        amount_minor=0,
        currency=quote.currency,
    )
    try:
        link.amount_minor = to_minor(quote.total, quote.currency)
    except MinorUnitError as exc:
        link.status, link.error = PaymentStatus.FAILED, str(exc)
    quote.payment_status = link.status
    session.add(link)
    await session.flush()
    log.info("payments.quote_accepted", quote=quote.id, link=link.id, status=link.status.value)
    return Acceptance(quote.id, link.id if link.status is PaymentStatus.PENDING else None)


def checkout_request(link: PaymentLink, quote: Quote, settings: Settings) -> CheckoutRequest:
    """The Checkout Session for the link's quote; raises `MinorUnitError` for an amount the currency cannot hold."""
    currency = quote.currency
    lines = tuple(
        CheckoutLine(
            name=f"{item['sku']} {item['name']}"[:250],
            unit_amount=to_minor(Decimal(item["unit_price"]), currency),
            quantity=int(item["qty"]),
        )
        for item in quote.items
    )
    base = settings.public_base_url.rstrip("/")
    return CheckoutRequest(
        idempotency_key=link.idempotency_key,
        currency=currency,
        lines=lines,
        discount=to_minor(quote.discount_amount, currency),
        success_url=f"{base}/payments/success?quote={quote.id}",
        cancel_url=f"{base}/payments/cancelled?quote={quote.id}",
        client_reference_id=f"quote-{quote.id}",
        metadata={
            "quote_id": str(quote.id),
            "payment_link_id": str(link.id),
            "conversation_id": str(quote.conversation_id),
        },
    )


@dataclass(frozen=True)
class LinkOutcome:
    # sent: the link message is in the outbox; retry: a transient failure was recorded; failed; skipped.
    result: str
    conversation_id: int | None = None


async def create_link(
    session: AsyncSession, settings: Settings, provider: CheckoutProvider, link_id: int
) -> LinkOutcome:
    """Create the pending link's Checkout Session and write its message into the outbox (flushes only)."""
    link = await repository.lock_link(session, link_id)
    if link is None or link.status is not PaymentStatus.PENDING:
        return LinkOutcome("skipped")
    quote = await session.get_one(Quote, link.quote_id)
    conversation = await session.get_one(Conversation, link.conversation_id)
    link.attempts += 1
    try:
        request = checkout_request(link, quote, settings)
        if request.amount_total != link.amount_minor:
            raise PaymentRejectedError("the quote's lines and discount do not add up to its total")
        checkout = await provider.create_checkout(request)
        if checkout.amount_total != link.amount_minor or checkout.currency.upper() != link.currency.upper():
            raise PaymentRejectedError(
                f"Stripe's total {checkout.amount_total} {checkout.currency} differs from the quote's "
                f"{link.amount_minor} {link.currency}"
            )
    except (MinorUnitError, PaymentProviderError) as exc:
        message = exc.message if isinstance(exc, PaymentProviderError) else str(exc)
        link.error = message[:MAX_ERROR_LENGTH]
        retry = isinstance(exc, PaymentProviderError) and exc.retryable and link.attempts < MAX_LINK_ATTEMPTS
        if retry:
            log.warning("payments.link_retrying", link=link.id, attempts=link.attempts)
            await session.flush()
            return LinkOutcome("retry", conversation.id)
        link.status = quote.payment_status = PaymentStatus.FAILED
        conversation.needs_attention = True
        await session.flush()
        log.warning("payments.link_failed", link=link.id, quote=quote.id)
        return LinkOutcome("failed", conversation.id)
    link.status = quote.payment_status = PaymentStatus.OPEN
    link.checkout_session_id, link.url, link.expires_at, link.error = (
        checkout.id,
        checkout.url,
        checkout.expires_at,
        None,
    )
    text = _fill(
        _messages(settings).payment_link,
        _language(settings, conversation),
        quote=str(quote.id),
        total=money(quote.total, quote.currency),
        url=checkout.url,
    )
    await write_outbound(
        session,
        conversation,
        text=text,
        author=Author.BOT,
        key_prefix=f"payment-link:{link.id}",
        limit=part_limit(settings, conversation.channel),
    )
    log.info("payments.link_sent", link=link.id, quote=quote.id)
    return LinkOutcome("sent", conversation.id)


@dataclass(frozen=True)
class EventOutcome:
    outcome: str
    duplicate: bool = False
    # A message was written into this conversation's outbox: schedule its delivery after the commit.
    deliver_to: int | None = None


async def handle_event(session: AsyncSession, settings: Settings, event: StripeEvent, *, now: datetime) -> EventOutcome:
    """Apply a verified Stripe event once (flushes only; the request commits)."""
    session_id = event.object.get("id") if event.object.get("object") == "checkout.session" else None
    checkout_id = session_id if isinstance(session_id, str) and len(session_id) <= 255 else None
    event_row = await repository.claim_event(session, event.id, event.type, checkout_id)
    if event_row is None:
        log.info("payments.event_duplicate", type=event.type)
        return EventOutcome("duplicate", duplicate=True)
    outcome = EventOutcome("ignored")
    link = await repository.lock_link_by_session(session, checkout_id) if checkout_id else None
    if checkout_id is not None and link is None:
        outcome = EventOutcome("unknown_session")
    elif link is not None:
        if event.type in PAID_EVENTS:
            outcome = await _paid(session, settings, link, event, now=now)
        elif event.type == EXPIRED_EVENT:
            outcome = await _ended(session, link, PaymentStatus.EXPIRED, "the Checkout Session expired unpaid")
        elif event.type == FAILED_EVENT:
            outcome = await _ended(session, link, PaymentStatus.FAILED, "the delayed payment failed")
    row = await session.get_one(PaymentEvent, event_row)
    row.outcome, row.payment_link_id = outcome.outcome, link.id if link is not None else None
    await session.flush()
    log.info("payments.event_applied", type=event.type, outcome=outcome.outcome)
    return outcome


async def _paid(
    session: AsyncSession, settings: Settings, link: PaymentLink, event: StripeEvent, *, now: datetime
) -> EventOutcome:
    if event.object.get("payment_status") != "paid":
        # Completed with a delayed payment method (bank debit): async_payment_succeeded follows.
        return EventOutcome("not_paid_yet")
    if link.status is PaymentStatus.PAID:
        return EventOutcome("already_paid")
    quote = await session.get_one(Quote, link.quote_id)
    conversation = await session.get_one(Conversation, link.conversation_id, with_for_update=True)
    amount, currency = event.object.get("amount_total"), str(event.object.get("currency") or "").upper()
    if amount != link.amount_minor or currency != link.currency.upper():
        # Money arrived, but not the quote's total: a manager looks at it; nothing is marked paid.
        link.error = f"paid {amount} {currency}, expected {link.amount_minor} {link.currency}"
        conversation.needs_attention = True
        log.warning("payments.amount_mismatch", link=link.id, quote=quote.id)
        return EventOutcome("amount_mismatch")
    link.status = quote.payment_status = PaymentStatus.PAID
    link.paid_at = quote.paid_at = now
    link.error = None
    _move_to_closing(conversation, await quote_count(session, conversation.id))
    # The deal is won: the CRM sweep pushes it (no CRM configured: nothing is recorded).
    await crm_service.request_sync(
        session,
        settings,
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        now=now,
        quote_id=quote.id,
    )
    await write_outbound(
        session,
        conversation,
        text=_fill(_messages(settings).payment_received, _language(settings, conversation), quote=str(quote.id)),
        author=Author.BOT,
        key_prefix=f"payment-received:{link.id}",
        limit=part_limit(settings, conversation.channel),
    )
    # In the webhook's transaction: the alert exists exactly when the payment is recorded; a redelivered event
    # never reaches this point (applied once per event id, and an already-paid link returned above).
    await alerts.record_alert(
        session,
        kind=alerts.AlertKind.PAYMENT_RECEIVED,
        conversation_id=conversation.id,
        event_key=f"payment:{link.id}",
        excerpt=f"Quote {quote.id} paid: {money(quote.total, quote.currency)}",
    )
    log.info("payments.quote_paid", quote=quote.id, conversation=conversation.id)
    return EventOutcome("paid", deliver_to=conversation.id)


async def _ended(session: AsyncSession, link: PaymentLink, status: PaymentStatus, reason: str) -> EventOutcome:
    if link.status is PaymentStatus.PAID:
        return EventOutcome("already_paid")
    quote = await session.get_one(Quote, link.quote_id)
    link.status = status
    link.error = reason
    await session.flush()
    # A late event about an old link leaves the quote's state to its newer, still payable link.
    if quote.payment_status is not PaymentStatus.PAID and await repository.live_link(session, quote.id) is None:
        quote.payment_status = status
    return EventOutcome(status.value)


def _move_to_closing(conversation: Conversation, quotes: int) -> None:
    """A paid quote closes the sale where the stage rules allow it (quoting -> closing); from an earlier stage
    (the customer went back to compare) the stage stays, and the payment is on the quote for the manager."""
    current = conversation.sales_stage
    if current is SalesStage.CLOSING:
        return
    facts = dict(conversation.facts or {})
    state = FunnelState(
        need=facts.get("need"),
        shown_skus=frozenset(facts.get("shown_skus", [])),
        selected_skus=frozenset(item["sku"] for item in facts.get("selected", [])),
        customer_name=None,
        customer_company=None,
        quotes=quotes,
    )
    problem = check_transition(current, SalesStage.CLOSING, state)
    if problem is not None:
        log.info("payments.stage_unchanged", conversation=conversation.id, stage=current.value)
        return
    conversation.sales_stage = SalesStage.CLOSING
    log.info("payments.stage_closing", conversation=conversation.id, from_stage=current.value)


def _messages(settings: Settings) -> FixedMessages:
    return load_playbook(settings.conversation.playbook_path or None).messages


def _language(settings: Settings, conversation: Conversation) -> str:
    return conversation.language or load_playbook(settings.conversation.playbook_path or None).default_language


def _fill(text: LocalizedText, language: str, **values: str) -> str:
    """The playbook text with its {placeholders} filled (plain replacement: a business's text may hold braces)."""
    result = text.get(language)
    for key, value in values.items():
        result = result.replace("{" + key + "}", value)
    return result
