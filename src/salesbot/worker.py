"""arq composition root: the jobs, cron jobs and the worker context's lifecycle."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any, ClassVar, cast

from arq import cron
from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from salesbot.agent.reply import ReplyGenerator
from salesbot.alerts.tasks import DISPATCH_EVERY_SECONDS, dispatch_alerts, send_alert
from salesbot.conversations.tasks import (
    TURN_ATTEMPTS,
    apply_takeover,
    release_expired_takeovers,
    reply_generator,
    run_turn,
    sweep_stalled_turns,
)
from salesbot.crm.tasks import sweep_crm, sync_crm
from salesbot.followups.tasks import RUN_AT_SECOND, follow_up_conversations
from salesbot.inbox.tasks import DRAIN_EVERY_SECONDS, DRAIN_TIMEOUT_SECONDS, drain_inbox_spool
from salesbot.kit import tracing
from salesbot.kit.heap import freeze_startup_heap
from salesbot.kit.language import load_model as load_language_model
from salesbot.kit.logging import configure_logging, get_logger
from salesbot.knowledge.tasks import inventory_cron_jobs, prepare_knowledge
from salesbot.messaging.registry import build_providers
from salesbot.outbox.tasks import deliver_outbox, sweep_stalled_outbox
from salesbot.payments.tasks import create_payment_link, sweep_payment_links
from salesbot.resources import open_resources, redis_settings
from salesbot.settings import Settings, get_settings
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

# A job whose worker was SIGKILLed is re-run after job_timeout (+ ~10 s arq overhead): keep recovery near a minute.
JOB_TIMEOUT_SECONDS = 45
HEALTH_CHECK_INTERVAL_SECONDS = 10
# How often an idle worker looks for due jobs. arq's default (0.5 s) is paid twice per reply (the turn's wake-up at
# the end of the debounce window, then the delivery job): about 0.5 s of the bot's own latency on average
# (bench/bench_turn.py). Polling every 50 ms costs a few cheap Redis commands a second.
POLL_DELAY_SECONDS = 0.05


def build_startup(settings: Settings | None, *, generator: ReplyGenerator | None = None) -> Any:
    """The worker's on_startup; `None` reads the settings from the environment when the worker starts.

    `generator` replaces the production agent (`salesbot.agent.service.generate_reply`) in tests.
    """

    async def startup(ctx: WorkerContext) -> None:
        resolved = settings or get_settings()
        tracing.setup(resolved.otel_exporter_otlp_endpoint, service="salesbot-worker", agent=True)
        stack = AsyncExitStack()
        ctx["exit_stack"] = stack
        ctx["resources"] = await stack.enter_async_context(open_resources(resolved, redis=ctx["redis"]))
        ctx["providers"] = build_providers(ctx["resources"])
        await prepare_knowledge(ctx["resources"])  # loads the embedding model once, before the first turn
        await asyncio.to_thread(load_language_model)  # the language detector's model, off the event loop
        if generator is not None:
            ctx["reply_generator"] = generator
        # Resolved at startup so a worker without a working agent fails now, not on the first customer message.
        reply_generator(ctx)
        freeze_startup_heap()  # after the models are loaded: they are the bulk of what a full collection walks
        log.info("worker.started", env=resolved.env.value)

    return startup


async def shutdown(ctx: WorkerContext) -> None:
    stack = ctx.get("exit_stack")
    if stack is not None:
        await stack.aclose()
    log.info("worker.stopped")


class WorkerSettings:
    """The worker's jobs and limits; `salesbot worker` runs it with the configured Redis URL."""

    functions: ClassVar[list[WorkerCoroutine | Function]] = [
        # Retries: crash re-runs (SIGKILL), agent errors (TURN_ATTEMPTS) and not-yet-due wake-ups re-enqueue
        # themselves under new ids, so a small budget suffices.
        func(cast(WorkerCoroutine, run_turn), max_tries=TURN_ATTEMPTS + 5),
        # Each transient send failure is an arq Retry of the same job (bounded per message by
        # OUTBOX_MAX_SEND_ATTEMPTS); the budget covers several messages of one conversation.
        func(cast(WorkerCoroutine, deliver_outbox), max_tries=50),
        func(cast(WorkerCoroutine, apply_takeover), max_tries=10),
        func(cast(WorkerCoroutine, send_alert), max_tries=5),
        # Transient Stripe failures retry with backoff (bounded per link by payments.service.MAX_LINK_ATTEMPTS).
        func(cast(WorkerCoroutine, create_payment_link), max_tries=10),
        # CRM failures back off (crm.service.backoff) up to crm.service.MAX_ATTEMPTS; the sweep re-enqueues due links.
        func(cast(WorkerCoroutine, sync_crm), max_tries=12),
    ]
    cron_jobs: ClassVar[list[Any]] = [
        cron(
            cast(WorkerCoroutine, release_expired_takeovers), second={0}, run_at_startup=False, unique=True, timeout=30
        ),
        cron(cast(WorkerCoroutine, sweep_stalled_turns), second={5, 20, 35, 50}, run_at_startup=True, timeout=30),
        cron(cast(WorkerCoroutine, sweep_stalled_outbox), second={10, 25, 40, 55}, run_at_startup=True, timeout=30),
        cron(cast(WorkerCoroutine, sweep_payment_links), second={30}, run_at_startup=False, timeout=30),
        cron(cast(WorkerCoroutine, sweep_crm), second={15, 45}, run_at_startup=False, timeout=30),
        cron(
            cast(WorkerCoroutine, drain_inbox_spool),
            second=set(range(0, 60, DRAIN_EVERY_SECONDS)),
            run_at_startup=True,
            timeout=DRAIN_TIMEOUT_SECONDS,
        ),
    ]
    cron_jobs.append(cron(cast(WorkerCoroutine, dispatch_alerts), second=set(range(0, 60, DISPATCH_EVERY_SECONDS))))
    cron_jobs.append(
        cron(cast(WorkerCoroutine, follow_up_conversations), second={RUN_AT_SECOND}, unique=True, timeout=40)
    )
    on_startup = staticmethod(build_startup(None))
    on_shutdown = staticmethod(shutdown)
    job_timeout = JOB_TIMEOUT_SECONDS
    max_tries = 8
    keep_result = 0
    health_check_interval = HEALTH_CHECK_INTERVAL_SECONDS
    allow_abort_jobs = True
    poll_delay = POLL_DELAY_SECONDS


def worker_options(settings: Settings, *, generator: ReplyGenerator | None = None) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (used by the CLI and by tests with their own settings)."""
    return {
        "functions": WorkerSettings.functions,
        "cron_jobs": [*WorkerSettings.cron_jobs, *inventory_cron_jobs(settings)],
        "on_startup": build_startup(settings, generator=generator),
        "on_shutdown": shutdown,
        "job_timeout": settings.worker_job_timeout_seconds,
        "max_tries": WorkerSettings.max_tries,
        "keep_result": WorkerSettings.keep_result,
        "health_check_interval": WorkerSettings.health_check_interval,
        "allow_abort_jobs": WorkerSettings.allow_abort_jobs,
        "redis_settings": redis_settings(settings.redis_url),
    }


def crash_recovery_seconds(settings: Settings) -> float:
    """How long arq leaves the job of a SIGKILLed worker alone before another worker runs it again."""
    return settings.worker_job_timeout_seconds + 10


def build_worker(settings: Settings, *, burst: bool = False) -> Any:
    """The production worker (`salesbot worker`)."""
    from arq.worker import Worker

    worker = Worker(**worker_options(settings), burst=burst, poll_delay=WorkerSettings.poll_delay)
    # arq leases every job for the longest timeout of ANY function + 10 s, cron jobs included: with the inventory
    # sync (300 s) configured, a crashed worker's conversation turn would wait over five minutes. Lease by the job
    # timeout instead. A longer job (the inventory sync) that outlives its lease may be started a second time,
    # which is harmless: it is idempotent and serialised by the catalog lock.
    worker.in_progress_timeout_s = crash_recovery_seconds(settings)
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    build_worker(settings, burst=burst).run()
