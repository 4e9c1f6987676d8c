"""arq jobs of the alerts domain: deliver one alert, and the dispatcher cron that enqueues due deliveries."""

from __future__ import annotations

from datetime import timedelta

from salesbot import queues
from salesbot.alerts import delivery, repository
from salesbot.alerts.base import AlertSender
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models._columns import utcnow
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

SEND_ALERT_JOB = "send_alert"
# The dispatcher's period: the longest an alert waits after its commit (or after its backoff) for a job.
DISPATCH_EVERY_SECONDS = 3
DISPATCH_BATCH = 200
# Alerts recorded while no channel was configured are not sent to a channel configured later, after this long.
NEW_ALERT_HORIZON = timedelta(days=1)


def _senders(ctx: WorkerContext) -> list[AlertSender]:
    # Built per job: cheap (no connection is opened), and the worker context stays free of alert state.
    return delivery.build_senders(ctx["resources"])


async def send_alert(ctx: WorkerContext, alert_id: int) -> str:
    """Deliver an alert to every configured channel; a transient failure comes back after its backoff."""
    resources = ctx["resources"]
    report = await delivery.deliver_alert(resources, _senders(ctx), alert_id)
    if report.retry_at is not None:
        await resources.redis.enqueue_job(
            SEND_ALERT_JOB,
            alert_id,
            _job_id=f"alert:{alert_id}:at:{int(report.retry_at.timestamp() * 1000)}",
            _queue_name=queues.MESSAGING,
            _defer_until=report.retry_at,
        )
    return f"sent={report.sent} failed={report.failed} retry={report.retry_at is not None}"


async def dispatch_alerts(ctx: WorkerContext) -> int:
    """Cron: enqueue a delivery job for each committed alert with a delivery due (new alerts, backoffs that ended,
    attempts whose worker died). Jobs of one alert never send a channel twice (row locks, `sent` is final)."""
    resources = ctx["resources"]
    now = utcnow()
    configured = bool(_senders(ctx))
    async with unit_of_work(resources.sessionmaker) as session:
        due = await repository.alerts_to_dispatch(
            session, now=now, new_since=now - NEW_ALERT_HORIZON if configured else None, limit=DISPATCH_BATCH
        )
    tick = int(now.timestamp()) // DISPATCH_EVERY_SECONDS
    for alert_id in due:
        await resources.redis.enqueue_job(
            SEND_ALERT_JOB, alert_id, _job_id=f"alert:{alert_id}:tick:{tick}", _queue_name=queues.MESSAGING
        )
    if due:
        log.info("alerts.dispatched", count=len(due))
    return len(due)
