"""Delivery of one alert to every configured channel, each at most once where the channel allows it.

For each due delivery row of the alert (one per channel):
1. in one short transaction: lock the row (rows another job holds are skipped), record the attempt and push its
   next attempt past a lease, then commit: a worker that dies mid-call leaves a row that is due again later;
2. call the channel (no transaction open);
3. record the outcome: `sent`; a retry after exponential backoff with jitter (not sooner than the channel's
   `retry_after`); or `failed` (a permanent refusal, attempts exhausted).
A `sent` row is never sent again, so a job that runs twice (a duplicate enqueue, arq re-running it) sends once.
Only an attempt whose answer was lost is repeated: the webhook and e-mail carry the same id each time (receivers
and mail clients drop the repeat); Telegram has no such id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.alerts import repository
from salesbot.alerts.base import AlertMessage, AlertSender, PermanentAlertError, RetryableAlertError
from salesbot.alerts.email import EmailSender
from salesbot.alerts.telegram import TelegramSender
from salesbot.alerts.webhook import WebhookSender
from salesbot.conversations import repository as conversations
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger, redact
from salesbot.kit.phones import mask_phone
from salesbot.models import Alert, AlertChannel, AlertDeliveryStatus
from salesbot.models._columns import utcnow
from salesbot.outbox.delivery import backoff_seconds
from salesbot.resources import Resources
from salesbot.settings import AlertSettings, Settings

log = get_logger(__name__)

# An attempt in progress holds its row this much longer than a job may run (then it is due again).
LEASE_MARGIN_SECONDS = 15


def build_senders(resources: Resources) -> list[AlertSender]:
    """The configured channels (none configured: alerts are recorded and shown in the admin only)."""
    return senders_for(resources.settings.alerts, resources.http)


def senders_for(settings: AlertSettings, http: httpx.AsyncClient) -> list[AlertSender]:
    senders: list[AlertSender] = []
    if settings.telegram_configured:
        senders.append(TelegramSender(settings, http))
    if settings.email_configured:
        senders.append(EmailSender(settings))
    if settings.webhook_configured:
        senders.append(WebhookSender(settings, http))
    return senders


def conversation_link(settings: Settings, conversation_id: int) -> str:
    """The admin's page of the conversation."""
    return f"{settings.public_base_url.rstrip('/')}/admin/conversation/details/{conversation_id}"


@dataclass
class AlertReport:
    sent: int = 0
    failed: int = 0
    # The earliest retry of a delivery that failed transiently.
    retry_at: datetime | None = None


@dataclass(frozen=True)
class _Attempt:
    delivery_id: int
    channel: AlertChannel
    attempts: int
    # When an earlier attempt started whose outcome was never recorded (it may have been delivered).
    attempted_before: datetime | None


async def deliver_alert(
    resources: Resources, senders: list[AlertSender], alert_id: int, *, now: datetime | None = None
) -> AlertReport:
    """Send the alert's due deliveries; `now` is injectable for tests (the real clock otherwise)."""
    report = AlertReport()
    by_channel = {sender.channel: sender for sender in senders}
    started = now or utcnow()
    lease = timedelta(seconds=resources.settings.worker_job_timeout_seconds + LEASE_MARGIN_SECONDS)
    async with unit_of_work(resources.sessionmaker) as session:
        alert = await session.get(Alert, alert_id)
        if alert is None:
            return report
        await repository.ensure_deliveries(session, alert_id, list(by_channel))
        message = await _message(session, resources.settings, alert)
        attempts: list[_Attempt] = []
        for row in await repository.lock_due_deliveries(session, alert_id, now=started):
            if row.channel not in by_channel:
                # Configured when the alert was recorded, not any more: nothing will send it.
                row.status, row.error, row.next_attempt_at = AlertDeliveryStatus.FAILED, "channel not configured", None
                report.failed += 1
                continue
            attempts.append(
                _Attempt(row.id, row.channel, row.attempts + 1, row.last_attempt_at if row.error is None else None)
            )
            row.attempts += 1
            row.last_attempt_at = started
            row.next_attempt_at = started + lease
            row.error = None
    for attempt in attempts:
        await _send(resources, by_channel[attempt.channel], message, attempt, report, now=now)
    return report


async def _message(session: AsyncSession, settings: Settings, alert: Alert) -> AlertMessage:
    conversation = await conversations.get_conversation(session, alert.conversation_id)
    customer = "unknown"
    channel = "unknown"
    if conversation is not None:
        masked = mask_phone(conversation.customer.chat_id) or "no number"
        name = redact(conversation.customer.name or "").strip()
        customer = f"{name} {masked}" if name else masked
        channel = conversation.channel.value
    return AlertMessage(
        alert_id=alert.id,
        event_key=alert.event_key,
        kind=alert.kind,
        conversation_id=alert.conversation_id,
        customer=customer,
        channel=channel,
        excerpt=alert.excerpt,
        link=conversation_link(settings, alert.conversation_id),
        created_at=alert.created_at,
    )


async def _send(
    resources: Resources,
    sender: AlertSender,
    message: AlertMessage,
    attempt: _Attempt,
    report: AlertReport,
    *,
    now: datetime | None,
) -> None:
    settings = resources.settings.alerts
    outcome: RetryableAlertError | PermanentAlertError | None = None
    try:
        await sender.send(message, attempted_before=attempt.attempted_before)
    except (RetryableAlertError, PermanentAlertError) as exc:
        outcome = exc
    finished = now or utcnow()
    async with unit_of_work(resources.sessionmaker) as session:
        row = await repository.lock_delivery(session, attempt.delivery_id)
        if row is None:
            return
        if outcome is None:
            row.status, row.sent_at, row.next_attempt_at, row.error = AlertDeliveryStatus.SENT, finished, None, None
            report.sent += 1
            log.info("alerts.sent", alert=message.alert_id, channel=sender.channel.value, attempts=attempt.attempts)
            return
        row.error = str(outcome)[:2000]
        if isinstance(outcome, PermanentAlertError) or attempt.attempts >= settings.alert_max_attempts:
            row.status, row.next_attempt_at = AlertDeliveryStatus.FAILED, None
            report.failed += 1
            log.warning("alerts.failed", alert=message.alert_id, channel=sender.channel.value, error=row.error)
            return
        delay = backoff_seconds(
            attempt.attempts,
            base=settings.alert_retry_base_seconds,
            cap=settings.alert_retry_max_seconds,
            floor=outcome.retry_after,
        )
        row.next_attempt_at = finished + timedelta(seconds=delay)
        report.retry_at = min(filter(None, (report.retry_at, row.next_attempt_at)))
        log.warning(
            "alerts.retry_scheduled",
            alert=message.alert_id,
            channel=sender.channel.value,
            attempt=attempt.attempts,
            delay=round(delay, 2),
            error=row.error,
        )
