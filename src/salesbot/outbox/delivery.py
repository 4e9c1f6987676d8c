"""Delivery of a conversation's pending outbound rows, in order, exactly once.

For each row, oldest first:
1. pace: wait until the recipient's previous message is at least `OUTBOX_PACING_SECONDS` old;
2. in one short transaction: lock the row, run the gate (owner, consent, 24 h window), apply the resend rule
   (`outbox.resend`: a row an earlier attempt may have delivered is looked up, resent inside the provider's
   duplicate window, or held as `unconfirmed` for a manager) and record the attempt (`send_attempts`,
   `last_attempt_at`, `uncertain_since`), then commit: the provider is never called for an attempt not on record;
3. call the provider with the row's idempotency key (Wazzup `crmMessageId`);
4. record the outcome: `sent` with the provider id, a scheduled retry (transient errors, exponential backoff with
   jitter), or `failed` with the provider's error and the conversation flagged for a manager (permanent errors,
   attempts exhausted). An answer proving the message was not taken clears `uncertain_since`; a timeout or a
   crash leaves it. No database transaction is open during the HTTP call.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.alerts import service as alerts
from salesbot.conversations import repository as conversations
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import (
    MessagingProvider,
    OptedOutError,
    PermanentProviderError,
    RetryableProviderError,
    SendResult,
    WindowClosedError,
)
from salesbot.messaging.registry import Providers
from salesbot.models import Author, Conversation, Customer, DeliveryStatus, Message
from salesbot.models._columns import utcnow
from salesbot.observability import metrics
from salesbot.outbox import gate, pacing, repository, resend, service
from salesbot.resources import Resources

log = get_logger(__name__)

_random = secrets.SystemRandom()
# A row whose backoff ends within this margin is sent now rather than re-deferred for milliseconds.
DUE_MARGIN = timedelta(milliseconds=250)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    # Held as `unconfirmed`: may have been sent, past the provider's duplicate window (see `outbox.resend`).
    held: int = 0
    # This run hit a transient failure: run again after this many seconds (arq Retry).
    retry_in: float | None = None
    # The next row is still backing off from an earlier run's failure: its due time.
    waiting_until: datetime | None = None
    # The time budget ran out with rows left.
    more: bool = False


class _Step(enum.Enum):
    IDLE = "idle"
    NEXT = "next"
    RETRY = "retry"


@dataclass(frozen=True)
class _Attempt:
    message_id: int
    conversation_id: int
    channel: str
    chat_id: str
    text: str
    idempotency_key: str
    as_template: bool
    attempts: int
    # When this attempt started (recorded before the call) and whether it opened the row's `uncertain_since`.
    started_at: datetime
    opened_uncertainty: bool
    # Set when an earlier attempt may have gone through and the provider can look messages up: do that first.
    reconcile_since: datetime | None
    known_provider_ids: frozenset[str]
    # A photo or document row: sent with `send_media` (its caption is `text`).
    media: service.OutboundMedia | None = None


def backoff_seconds(attempts: int, *, base: float, cap: float, floor: float | None = None) -> float:
    """Exponential backoff with jitter: base * 2^(attempts-1), capped, scaled by a random 0.5-1.0."""
    delay: float = min(cap, base * 2 ** max(0, attempts - 1)) * _random.uniform(0.5, 1.0)
    return max(delay, floor or 0.0)


async def deliver_conversation(
    resources: Resources, providers: Providers, conversation_id: int, *, budget_seconds: float
) -> DeliveryReport:
    """Send the conversation's pending rows in order until none is left, one needs a retry, or time runs out."""
    report = DeliveryReport()
    deadline = time.monotonic() + budget_seconds
    while True:
        if time.monotonic() > deadline:
            report.more = True
            return report
        step = await _deliver_next(resources, providers, conversation_id, report)
        if step is not _Step.NEXT:
            return report


async def _load(session: AsyncSession, conversation_id: int) -> tuple[Message, Conversation, Customer] | None:
    message = await repository.next_pending(session, conversation_id)
    if message is None:
        return None
    conversation = await conversations.get_conversation(session, conversation_id)
    if conversation is None:  # pragma: no cover  (the row's foreign key keeps the conversation)
        return None
    return message, conversation, conversation.customer


async def _deliver_next(
    resources: Resources, providers: Providers, conversation_id: int, report: DeliveryReport
) -> _Step:
    settings = resources.settings.outbox
    while True:
        async with unit_of_work(resources.sessionmaker) as session:
            loaded = await _load(session, conversation_id)
            if loaded is None:
                return _Step.IDLE
            message, conversation, customer = loaded
            pace_key = pacing.key(message.channel.value, customer.chat_id)
            # The recipient's slot is checked before the gate, so the gate's answer is fresh when the call is made;
            # a wait happens outside the transaction (the row is looked at again afterwards).
            wait = await pacing.remaining(resources.redis, pace_key, settings.pacing_seconds)
            if not wait:
                provider = providers.get(message.channel)
                now = utcnow()
                if message.next_attempt_at is not None and message.next_attempt_at > now + DUE_MARGIN:
                    report.waiting_until = message.next_attempt_at
                    return _Step.RETRY
                attempt_or_step = await _gate_and_record(
                    session, provider, message, conversation, customer, now, report
                )
                if isinstance(attempt_or_step, _Step):
                    return attempt_or_step
                attempt = attempt_or_step
                break
        await asyncio.sleep(wait)

    await pacing.mark(resources.redis, pace_key, settings.pacing_seconds)
    try:
        result = await _call_provider(resources, provider, attempt)
    except RetryableProviderError as exc:
        return await _transient(resources, attempt, exc, report)
    except WindowClosedError as exc:
        return await _window_closed(resources, provider, attempt, exc, report)
    except OptedOutError as exc:
        return await _permanent(resources, attempt, exc, report, opted_out=True)
    except PermanentProviderError as exc:
        return await _permanent(resources, attempt, exc, report)
    return await _sent(resources, provider, attempt, result, report)


async def _gate_and_record(
    session: AsyncSession,
    provider: MessagingProvider,
    message: Message,
    conversation: Conversation,
    customer: Customer,
    now: datetime,
    report: DeliveryReport,
) -> _Attempt | _Step:
    stale = (
        message.author is Author.BOT
        and message.in_reply_to_id is not None
        and await repository.manager_wrote_after(session, conversation.id, message.in_reply_to_id)
    )
    superseded = gate.is_follow_up(message) and await repository.customer_wrote_after(
        session, conversation.id, message.id
    )
    last_inbound = await repository.last_inbound_at(session, customer.id) if provider.window_applies else None
    verdict = gate.check(
        message,
        conversation,
        customer,
        now=now,
        manager_wrote_after=stale,
        customer_wrote_after=superseded,
        last_inbound_at=last_inbound,
        window_applies=provider.window_applies,
    )
    as_template = message.content_type == "template"
    if verdict.verdict is gate.Verdict.CANCEL:
        message.delivery_status, message.error = DeliveryStatus.CANCELLED, verdict.reason
        report.cancelled += 1
        log.info("outbox.cancelled", message_id=message.id, conversation=conversation.id, reason=verdict.reason)
        return _Step.NEXT
    if verdict.verdict is gate.Verdict.WINDOW_CLOSED and not as_template:
        if provider.has_window_template and not await repository.group_sent_template(session, message):
            # The reply cannot go out as text: the template invites the customer back into the window.
            message.content_type, as_template = "template", True
        else:
            reason = "window_closed: the 24-hour window is closed" + (
                "; the template was sent for this reply" if provider.has_window_template else ", no template configured"
            )
            await _fail(session, message, conversation, reason)
            await repository.withdraw_group(session, message, status=DeliveryStatus.FAILED, reason="window_closed")
            report.failed += 1
            return _Step.NEXT
    decision = resend.decide(
        message.uncertain_since, now, duplicate_window=provider.duplicate_window, finds_sent=provider.finds_sent
    )
    if decision is resend.Resend.HOLD:
        await _hold(session, message, conversation, provider)
        report.held += 1
        return _Step.NEXT
    reconcile = decision is resend.Resend.LOOK_UP
    opened = message.uncertain_since is None
    attempt = _Attempt(
        message_id=message.id,
        conversation_id=conversation.id,
        channel=message.channel.value,
        chat_id=customer.chat_id,
        text=message.text,
        idempotency_key=message.idempotency_key or f"message:{message.id}",
        as_template=as_template,
        attempts=message.send_attempts + 1,
        started_at=now,
        opened_uncertainty=opened,
        reconcile_since=message.uncertain_since if reconcile else None,
        known_provider_ids=frozenset(await repository.provider_ids(session, conversation.id))
        if reconcile
        else frozenset(),
        media=service.OutboundMedia.of(message),
    )
    message.send_attempts += 1
    message.last_attempt_at = now
    message.next_attempt_at = None
    if opened:
        # Until an answer says otherwise, this attempt may deliver the message: the duplicate window starts here.
        message.uncertain_since = now
    if decision is resend.Resend.RESEND_IN_WINDOW:
        log.info(
            "outbox.resend_in_window",
            message_id=message.id,
            conversation=conversation.id,
            elapsed=round((now - (message.uncertain_since or now)).total_seconds(), 1),
        )
    return attempt


async def _hold(
    session: AsyncSession, message: Message, conversation: Conversation, provider: MessagingProvider
) -> None:
    """An earlier attempt may have delivered this row and a resend is no longer refused as a repeat: hold it."""
    assert message.uncertain_since is not None
    window = provider.duplicate_window.total_seconds()
    message.delivery_status = DeliveryStatus.UNCONFIRMED
    message.error = (
        f"unconfirmed: an attempt at {message.uncertain_since.isoformat(timespec='seconds')} may have been "
        f"delivered and {provider.channel.value} no longer refuses a repeat after {window:.0f} s; not resent"
    )
    message.next_attempt_at = None
    # A manager decides (the customer may or may not have it); the rest of the reply waits with it.
    conversation.needs_attention = True
    await repository.withdraw_group(session, message, status=DeliveryStatus.CANCELLED, reason=service.UNCONFIRMED_PART)
    log.warning(
        "outbox.unconfirmed",
        message_id=message.id,
        conversation=conversation.id,
        channel=provider.channel.value,
        attempts=message.send_attempts,
    )


async def _call_provider(resources: Resources, provider: MessagingProvider, attempt: _Attempt) -> SendResult:
    if attempt.reconcile_since is not None:
        # What went out is the template when the row was sent as one, not the reply text.
        found = await provider.find_sent(
            attempt.chat_id,
            None if attempt.as_template else attempt.text,
            since=attempt.reconcile_since,
            exclude=attempt.known_provider_ids,
        )
        if found is not None:
            log.info("outbox.reconciled", message_id=attempt.message_id, conversation=attempt.conversation_id)
            return SendResult(provider_message_id=found, already_sent=True)
    if attempt.as_template:
        return await provider.send_template(attempt.chat_id, idempotency_key=f"{attempt.idempotency_key}:template")
    if attempt.media is not None:
        return await provider.send_media(
            attempt.chat_id,
            attempt.media.url,
            idempotency_key=attempt.idempotency_key,
            # Where a caption cannot ride along, the file goes alone: the reply's text already named the product.
            caption=(attempt.media.caption or None) if provider.captions_media else None,
            filename=attempt.media.filename,
        )
    return await provider.send_text(attempt.chat_id, attempt.text, idempotency_key=attempt.idempotency_key)


async def _locked(session: AsyncSession, message_id: int) -> Message | None:
    return await session.scalar(select(Message).where(Message.id == message_id).with_for_update())


def _settle(message: Message, attempt: _Attempt) -> None:
    """The provider's answer proves this attempt created no message: it no longer counts as maybe delivered."""
    if attempt.opened_uncertainty and message.uncertain_since == attempt.started_at:
        message.uncertain_since = None


async def _fail(session: AsyncSession, message: Message, conversation: Conversation, error: str) -> None:
    message.delivery_status = DeliveryStatus.FAILED
    message.error = error[:2000]
    message.next_attempt_at = None
    # Visible in the admin panel and the API: a reply the customer did not get.
    conversation.needs_attention = True
    await alerts.record_alert(
        session,
        kind=alerts.AlertKind.DELIVERY_FAILED,
        conversation_id=conversation.id,
        event_key=alerts.delivery_failed_event_key(message.id),
        excerpt=message.error,
    )
    log.warning("outbox.failed", message_id=message.id, conversation=conversation.id, error=message.error)


async def _sent(
    resources: Resources, provider: MessagingProvider, attempt: _Attempt, result: SendResult, report: DeliveryReport
) -> _Step:
    """Record the send; NEXT when the conversation has another pending row. Asked in this transaction, so a reply
    of one message (most of them) costs no second transaction that finds nothing: a row written after the
    commit is delivered by the job its writer schedules."""
    now = utcnow()
    async with unit_of_work(resources.sessionmaker) as session:
        message = await _locked(session, attempt.message_id)
        if message is None:
            return _Step.NEXT
        written_at = message.created_at
        if result.provider_message_id and message.provider_message_id is None:
            message.provider_message_id = result.provider_message_id
        if message.delivery_status in (DeliveryStatus.PENDING, DeliveryStatus.CANCELLED, DeliveryStatus.UNCONFIRMED):
            # What really happened wins over a cancel that raced the call.
            message.delivery_status = DeliveryStatus.SENT
        message.sent_at = message.sent_at or now
        message.next_attempt_at = None
        message.uncertain_since = None
        if message.content_type == "template":
            message.error = service.TEMPLATE_SENT_NOTE
        else:
            message.error = None
        await session.flush()  # the row just sent is no longer pending when the next one is looked for
        more = await repository.has_pending(session, attempt.conversation_id)
    report.sent += 1
    await metrics.record_delivery(provider.channel.value, "sent", seconds=(now - written_at).total_seconds())
    log.info(
        "outbox.sent",
        message_id=attempt.message_id,
        conversation=attempt.conversation_id,
        channel=provider.channel.value,
        attempts=attempt.attempts,
        already_sent=result.already_sent,
    )
    if result.provider_message_id:
        early = await service.pop_early_statuses(resources.redis, provider.channel, result.provider_message_id)
        for status in early:
            async with unit_of_work(resources.sessionmaker) as session:
                await service.apply_status(session, status)
    return _Step.NEXT if more else _Step.IDLE


async def _transient(
    resources: Resources, attempt: _Attempt, exc: RetryableProviderError, report: DeliveryReport
) -> _Step:
    settings = resources.settings.outbox
    async with unit_of_work(resources.sessionmaker) as session:
        message = await _locked(session, attempt.message_id)
        if message is None or message.delivery_status is not DeliveryStatus.PENDING:
            return _Step.NEXT
        if not exc.maybe_accepted:
            _settle(message, attempt)
        if attempt.attempts >= settings.max_send_attempts:
            conversation = await session.get(Conversation, attempt.conversation_id)
            assert conversation is not None
            await _fail(session, message, conversation, f"{exc} (gave up after {attempt.attempts} attempts)")
            await repository.withdraw_group(
                session, message, status=DeliveryStatus.CANCELLED, reason="previous_part_failed"
            )
            report.failed += 1
            await metrics.record_delivery(attempt.channel, "failed")
            return _Step.NEXT
        delay = backoff_seconds(
            attempt.attempts, base=settings.retry_base_seconds, cap=settings.retry_max_seconds, floor=exc.retry_after
        )
        message.next_attempt_at = utcnow() + timedelta(seconds=delay)
        # The last transient error stays visible while the row waits for its retry.
        message.error = str(exc)[:2000]
    report.retry_in = delay
    await metrics.record_delivery(attempt.channel, "retry")
    log.warning(
        "outbox.retry_scheduled",
        message_id=attempt.message_id,
        conversation=attempt.conversation_id,
        attempt=attempt.attempts,
        delay=round(delay, 2),
        error=str(exc),
    )
    return _Step.RETRY


async def _permanent(
    resources: Resources,
    attempt: _Attempt,
    exc: PermanentProviderError,
    report: DeliveryReport,
    *,
    opted_out: bool = False,
) -> _Step:
    async with unit_of_work(resources.sessionmaker) as session:
        message = await _locked(session, attempt.message_id)
        conversation = await session.get(Conversation, attempt.conversation_id)
        if message is None or conversation is None:
            return _Step.NEXT
        _settle(message, attempt)
        await _fail(session, message, conversation, f"opted_out: {exc}" if opted_out else str(exc))
        await repository.withdraw_group(
            session, message, status=DeliveryStatus.CANCELLED, reason="previous_part_failed"
        )
        if opted_out:
            customer = await session.get(Customer, conversation.customer_id)
            if customer is not None and customer.opted_out_at is None:
                customer.opted_out_at = utcnow()
    report.failed += 1
    await metrics.record_delivery(attempt.channel, "failed")
    return _Step.NEXT


async def _window_closed(
    resources: Resources,
    provider: MessagingProvider,
    attempt: _Attempt,
    exc: WindowClosedError,
    report: DeliveryReport,
) -> _Step:
    """The provider says the window is closed: retry this row as the template once, if one is configured."""
    if attempt.as_template or not provider.has_window_template:
        return await _permanent(resources, attempt, exc, report)
    async with unit_of_work(resources.sessionmaker) as session:
        message = await _locked(session, attempt.message_id)
        if message is None or message.delivery_status is not DeliveryStatus.PENDING:
            return _Step.NEXT
        _settle(message, attempt)
        message.content_type = "template"
    return _Step.NEXT
