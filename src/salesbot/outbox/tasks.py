"""arq jobs of the outbox: per-conversation delivery and the recovery sweep."""

from __future__ import annotations

from datetime import timedelta

from arq import Retry

from salesbot import queues
from salesbot.db import unit_of_work
from salesbot.kit import tracing
from salesbot.kit.logging import get_logger
from salesbot.kit.redis_lock import FlaggingLock
from salesbot.messaging.registry import Providers, build_providers
from salesbot.models._columns import utcnow
from salesbot.outbox import delivery, repository, service
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

# Pending rows untouched this long are recovered by the sweep (lost job, Redis loss, retries exhausted by arq).
STALLED_AFTER_SECONDS = 30
SWEEP_BATCH = 200


def providers(ctx: WorkerContext) -> Providers:
    found = ctx.get("providers")
    if found is None:
        found = ctx["providers"] = build_providers(ctx["resources"])
    return found


def _lock_ttl_ms(ctx: WorkerContext) -> int:
    # Same reasoning as the turn lock: longer than a job may run, shorter than arq's crash recovery.
    return int((ctx["resources"].settings.worker_job_timeout_seconds + 2) * 1000)


async def deliver_outbox(ctx: WorkerContext, conversation_id: int) -> str:
    """Send the conversation's pending messages in order (one delivery job per conversation at a time)."""
    resources = ctx["resources"]
    redis = resources.redis
    lock = FlaggingLock(redis, f"sb:outbox:lock:{conversation_id}", _lock_ttl_ms(ctx))
    acquired = await lock.acquire()
    if not acquired.ok:
        # The holder delivers again when it releases the lock (flag set); see `run_turn` for a dead holder.
        return "busy"
    try:
        # Later schedule_delivery calls now enqueue a new job instead of coalescing into this running one.
        await service.start_generation(redis, conversation_id)
        # Stop well before the job timeout; a continuation job picks up the rest.
        budget = resources.settings.worker_job_timeout_seconds / 2
        async with tracing.job_span(redis, "deliver", job=f"deliver:{conversation_id}", conversation=conversation_id):
            report = await delivery.deliver_conversation(
                resources, providers(ctx), conversation_id, budget_seconds=budget
            )
    finally:
        if await lock.release():
            await service.schedule_delivery_extra(redis, conversation_id)
    if report.more:
        await service.schedule_delivery_extra(redis, conversation_id)
    if report.retry_in is not None:
        # Transient provider failure: arq re-runs this job after the backoff.
        raise Retry(defer=max(report.retry_in, 0.05))
    if report.waiting_until is not None:
        # Another run's retry is pending; one job per due time (coalesced by id) resumes the conversation then.
        due_ms = int(report.waiting_until.timestamp() * 1000)
        await redis.enqueue_job(
            service.DELIVER_JOB,
            conversation_id,
            _job_id=f"deliver:{conversation_id}:due:{due_ms}",
            _queue_name=queues.MESSAGING,
            _defer_until=report.waiting_until,
        )
        return "waiting"
    return f"sent={report.sent} failed={report.failed} cancelled={report.cancelled} held={report.held}"


async def sweep_stalled_outbox(ctx: WorkerContext) -> int:
    """Cron: schedule delivery for pending rows nobody is working on."""
    resources = ctx["resources"]
    now = utcnow()
    stalled_after = timedelta(seconds=STALLED_AFTER_SECONDS)
    async with unit_of_work(resources.sessionmaker) as session:
        stalled = await repository.conversations_with_stalled_outbox(
            session,
            created_before=now - stalled_after,
            attempted_before=now - timedelta(seconds=resources.settings.worker_job_timeout_seconds + 15),
            due_before=now - stalled_after,
            limit=SWEEP_BATCH,
        )
    for conversation_id in stalled:
        await service.schedule_delivery(resources.redis, conversation_id)
    if stalled:
        log.warning("outbox.stalled_recovered", count=len(stalled))
    return len(stalled)
