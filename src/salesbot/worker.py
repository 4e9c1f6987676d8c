"""arq composition root: the jobs and cron jobs of each queue, the process's shared context, and its workers.

`salesbot worker` runs one arq `Worker` per queue (`salesbot.queues`) in one process and event loop, sharing one
set of resources (database pool, HTTP client, the loaded embedding and language models):

- turns: `WORKER_MAX_JOBS` slots (default 100). A turn mostly waits on the LLM, so a process holds many at once.
- messaging: deliveries and takeovers in `WORKER_MESSAGING_MAX_JOBS` slots of their own, so a reply is sent, and
  a manager's takeover applied, while every turn slot waits on a slow model.
- scheduled: the cron jobs (sweeps, the inbox spool drain, expiring takeovers, the inventory sync with its 300 s).

arq leases a running job for the longest timeout among its worker's functions + 10 s; a job whose worker was
SIGKILLed is run again when the lease expires. One worker per queue keeps each lease honest: a killed turn or
delivery is re-run after `WORKER_JOB_TIMEOUT_SECONDS` + 10 s whatever the cron jobs allow themselves (a killed
cron run waits out the long lease, but its next scheduled run comes sooner).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.utils import timestamp_ms
from arq.worker import Function, Worker, func
from uvicorn.loops.auto import auto_loop_factory

from salesbot import queues
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
from salesbot.kit import redis_client, tracing
from salesbot.kit.arq_worker import QueueWorker
from salesbot.kit.heap import freeze_startup_heap
from salesbot.kit.language import load_model as load_language_model
from salesbot.kit.logging import configure_logging, get_logger
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.tasks import inventory_cron_jobs, prepare_knowledge
from salesbot.memory import service as memory
from salesbot.messaging.registry import build_providers
from salesbot.outbox.tasks import deliver_outbox, sweep_stalled_outbox
from salesbot.payments.tasks import create_payment_link, sweep_payment_links
from salesbot.resources import Resources, open_resources
from salesbot.settings import Settings
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

HEALTH_CHECK_INTERVAL_SECONDS = 10
# How often an idle worker looks for due jobs. arq's default (0.5 s) is paid twice per reply (the turn's wake-up at
# the end of the debounce window, then the delivery job): about 0.5 s of the bot's own latency on average
# (bench/bench_turn.py). Polling every 50 ms costs a few cheap Redis commands a second.
POLL_DELAY_SECONDS = 0.05
MAX_TRIES = 8
# Five cron jobs, each unique per scheduled time; the spool drain (every 5 s) may overlap a slow run of itself.
SCHEDULED_MAX_JOBS = 10
# Database connections a worker process keeps (plus `resources.DB_OVERFLOW` under bursts). Its jobs' transactions
# last milliseconds, none spans a model's think time or a provider call (see `worker_process`), so a few dozen
# serve a hundred turn slots (bench/bench_load.py, realistic LLM case, measures it).
WORKER_DB_CONNECTIONS = 20

TURN_FUNCTIONS: list[WorkerCoroutine | Function] = [
    # Retries: crash re-runs (SIGKILL), agent errors (TURN_ATTEMPTS) and not-yet-due wake-ups re-enqueue
    # themselves under new ids, so a small budget suffices.
    func(cast(WorkerCoroutine, run_turn), max_tries=TURN_ATTEMPTS + 5),
]
MESSAGING_FUNCTIONS: list[WorkerCoroutine | Function] = [
    # Each transient send failure is an arq Retry of the same job (bounded per message by
    # OUTBOX_MAX_SEND_ATTEMPTS); the budget covers several messages of one conversation.
    func(cast(WorkerCoroutine, deliver_outbox), max_tries=50),
    func(cast(WorkerCoroutine, apply_takeover), max_tries=10),
    # Team alerts, payment links and CRM sync call third parties: like deliveries, never behind LLM turns.
    func(cast(WorkerCoroutine, send_alert), max_tries=5),
    # Transient Stripe failures retry with backoff (bounded per link by payments.service.MAX_LINK_ATTEMPTS).
    func(cast(WorkerCoroutine, create_payment_link), max_tries=10),
    # CRM failures back off (crm.service.backoff) up to crm.service.MAX_ATTEMPTS; the sweep re-enqueues due links.
    func(cast(WorkerCoroutine, sync_crm), max_tries=12),
]
SCHEDULED_CRON_JOBS: list[CronJob] = [
    cron(cast(WorkerCoroutine, release_expired_takeovers), second={0}, run_at_startup=False, unique=True, timeout=30),
    cron(cast(WorkerCoroutine, sweep_stalled_turns), second={5, 20, 35, 50}, run_at_startup=True, timeout=30),
    cron(cast(WorkerCoroutine, sweep_stalled_outbox), second={10, 25, 40, 55}, run_at_startup=True, timeout=30),
    cron(
        cast(WorkerCoroutine, drain_inbox_spool),
        second=set(range(0, 60, DRAIN_EVERY_SECONDS)),
        run_at_startup=True,
        timeout=DRAIN_TIMEOUT_SECONDS,
    ),
    cron(cast(WorkerCoroutine, sweep_payment_links), second={30}, run_at_startup=False, timeout=30),
    cron(cast(WorkerCoroutine, sweep_crm), second={15, 45}, run_at_startup=False, timeout=30),
    cron(cast(WorkerCoroutine, dispatch_alerts), second=set(range(0, 60, DISPATCH_EVERY_SECONDS)), timeout=30),
    cron(cast(WorkerCoroutine, follow_up_conversations), second={RUN_AT_SECOND}, unique=True, timeout=40),
]


def queue_options(settings: Settings, queue: str) -> dict[str, Any]:
    """Keyword arguments for the arq `Worker` serving `queue`: its jobs, slots and timeouts (no context, no Redis)."""
    options: dict[str, Any] = {
        "queue_name": queue,
        "job_timeout": settings.worker_job_timeout_seconds,
        "max_tries": MAX_TRIES,
        "keep_result": 0,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        # Nothing here aborts jobs (a turn is withdrawn by its commit step, see conversations.turn); arq would
        # otherwise look for aborted jobs in a Redis transaction on every poll of every queue.
        "allow_abort_jobs": False,
        "poll_delay": POLL_DELAY_SECONDS,
    }
    if queue == queues.TURNS:
        return {**options, "functions": TURN_FUNCTIONS, "cron_jobs": [], "max_jobs": settings.worker_max_jobs}
    if queue == queues.MESSAGING:
        return {
            **options,
            "functions": MESSAGING_FUNCTIONS,
            "cron_jobs": [],
            "max_jobs": settings.worker_messaging_max_jobs,
        }
    if queue == queues.SCHEDULED:
        cron_jobs = [*SCHEDULED_CRON_JOBS, *inventory_cron_jobs(settings)]
        return {**options, "functions": [], "cron_jobs": cron_jobs, "max_jobs": SCHEDULED_MAX_JOBS}
    raise ValueError(f"unknown queue {queue!r}")


def has_jobs(options: dict[str, Any]) -> bool:
    """arq refuses a worker without functions or cron jobs (tests that leave the cron jobs out)."""
    return bool(options["functions"] or options["cron_jobs"])


def process_options(settings: Settings, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The workers of one process: the named queues (`salesbot worker --queues`), or every queue with jobs."""
    chosen = [queues.BY_NAME[name] for name in names] if names else list(queues.BY_NAME.values())
    return [options for options in (queue_options(settings, queue) for queue in chosen) if has_jobs(options)]


@asynccontextmanager
async def worker_process(
    settings: Settings, *, slots: int, generator: ReplyGenerator | None = None
) -> AsyncIterator[WorkerContext]:
    """What a process's workers share, opened once: resources, providers, the loaded models and the agent.

    `slots`: the jobs its workers run at once. No job holds a connection while it waits on the network: a turn's
    transactions are short and none is open while the model thinks (`salesbot.conversations.turn`), deliveries
    call providers between transactions. So the pool is sized for the transactions running at one moment, not
    for the slots (`WORKER_DB_CONNECTIONS` + `resources.DB_OVERFLOW`): a slot that finds every connection busy
    waits a few milliseconds for one, and Postgres is spared a hundred idle backends per worker process.
    `generator` replaces the production agent (`salesbot.agent.service.generate_reply`) in tests.
    """
    tracing.setup(settings.otel_exporter_otlp_endpoint, service="salesbot-worker", agent=True)
    # No pre-ping: three round trips on each of a turn's transactions; a connection that died unnoticed fails a
    # job, which retries (closed ones are replaced for free, see `salesbot.db.create_engine`).
    async with open_resources(
        settings, db_connections=min(slots, WORKER_DB_CONNECTIONS), db_pre_ping=False
    ) as resources:
        ctx: WorkerContext = {"resources": resources, "providers": build_providers(resources)}
        await prepare_knowledge(resources)  # loads the embedding model once, before the first turn
        await prepare_memory(resources)
        await asyncio.to_thread(load_language_model)  # the language detector's model, off the event loop
        if generator is not None:
            ctx["reply_generator"] = generator
        # Resolved at startup so a worker without a working agent fails now, not on the first customer message.
        reply_generator(ctx)
        freeze_startup_heap()  # after the models are loaded: they are the bulk of what a full collection walks
        yield ctx


async def prepare_memory(resources: Resources) -> None:
    embedder = get_embedder(resources.settings)
    async with resources.sessionmaker() as session:
        if await memory.adapt_empty_column(session, embedder):
            await session.commit()
            log.info("memory.column_adapted", model=embedder.name, dim=embedder.dim)


async def serve(
    settings: Settings,
    options: Sequence[dict[str, Any]],
    *,
    burst: bool = False,
    generator: ReplyGenerator | None = None,
    handle_signals: bool = True,
) -> None:
    """Run one arq worker per entry of `options` in this event loop until a signal (or, in burst mode, until every
    queue is empty). A worker that fails stops the others: the process exits and its supervisor restarts it."""
    if not options:
        raise RuntimeError("no queue with jobs to serve")
    slots = sum(int(entry["max_jobs"]) for entry in options)
    async with worker_process(settings, slots=slots, generator=generator) as shared:
        workers = [
            QueueWorker(
                **entry,
                ctx={**shared},
                # Each worker owns its client (arq closes it with the worker), on a pool that stays fast under load.
                redis_pool=await redis_client.connect(settings.redis_url),
                burst=burst,
                handle_signals=False,  # one event loop has one handler per signal: installed below for all
            )
            for entry in options
        ]

        shutdown = Shutdown(workers, grace_seconds=settings.worker_shutdown_grace_seconds)
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, shutdown.request, signum)
        log.info(
            "worker.started",
            env=settings.env.value,
            queues=[worker.queue_name for worker in workers],
            event_loop=type(loop).__module__.partition(".")[0],
        )
        runs = [asyncio.ensure_future(worker.async_run()) for worker in workers]
        try:
            if burst:
                await asyncio.gather(*runs)
            else:
                done, _ = await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
                for run in done:
                    if not run.cancelled() and run.exception() is not None:
                        raise cast(BaseException, run.exception())
        finally:
            if handle_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            await shutdown.cancel_drain()
            for worker in workers:
                await worker.close()  # cancels what still runs (a crash re-run recovers it), drops the heartbeat
            await asyncio.gather(*runs, return_exceptions=True)
    log.info("worker.stopped")


class Shutdown:
    """A signal drains the process; a second one stops it now.

    Draining lets the running turns finish (up to `WORKER_SHUTDOWN_GRACE_SECONDS`) instead of cancelling them: a
    cancelled turn is run again by the next worker, and counts a start towards the turn's crash budget. Turns and
    cron jobs stop taking jobs first while deliveries go on, so the reply a finishing turn writes is still sent by
    this process; deliveries stop once none is due or running. What still runs at the deadline, or at a second
    signal, is cancelled by arq and re-run after a restart."""

    DUE_POLL_SECONDS = 0.1

    def __init__(self, workers: Sequence[Worker], *, grace_seconds: float) -> None:
        self.workers = list(workers)
        self.grace_seconds = grace_seconds
        self._drain: asyncio.Task[None] | None = None

    def request(self, signum: signal.Signals) -> None:
        if self._drain is None and self.grace_seconds > 0:
            log.info(
                "worker.draining",
                signal=signum.name,
                running_jobs=len(self.running()),
                grace_seconds=self.grace_seconds,
            )
            self._drain = asyncio.ensure_future(self._drain_then_stop(signum))
            return
        self._stop(signum)

    def running(self, workers: Sequence[Worker] | None = None) -> list[asyncio.Task[Any]]:
        # arq forgets a finished job's task only at its next poll
        return [task for worker in workers or self.workers for task in worker.tasks.values() if not task.done()]

    async def cancel_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain

    async def _drain_then_stop(self, signum: signal.Signals) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_seconds
        messaging = [worker for worker in self.workers if worker.queue_name == queues.MESSAGING]
        others = [worker for worker in self.workers if worker.queue_name != queues.MESSAGING]
        for worker in others:
            worker.allow_pick_jobs = False
        # Again until none is left: a poll already under way when the flag fell may still start a job.
        while (running := self.running(others)) and loop.time() < deadline:
            await asyncio.wait(running, timeout=deadline - loop.time())
        # The finished turns' replies are due on the messaging queue: send them, leave later retries to the next worker.
        # Due jobs live in Redis: there is no event to await.
        while loop.time() < deadline and (self.running(messaging) or await self._due(messaging)):  # noqa: ASYNC110
            await asyncio.sleep(self.DUE_POLL_SECONDS)
        log.info("worker.drained", cancelled_jobs=len(self.running()))
        self._stop(signum)

    @staticmethod
    async def _due(workers: Sequence[Worker]) -> int:
        # arq's own clock: it scores a job with the rounded enqueue time, which a truncated "now" taken within the
        # same millisecond would miss (the reply a turn enqueued just before finishing).
        now_ms = timestamp_ms()
        return sum([await worker.pool.zcount(worker.queue_name, "-inf", now_ms) for worker in workers])

    def _stop(self, signum: signal.Signals) -> None:
        for worker in self.workers:
            worker.handle_sig(signum)  # arq's own shutdown: running jobs are cancelled and queued again


def run_worker(settings: Settings, *, queue_names: Sequence[str] | None = None, burst: bool = False) -> None:
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    # The event loop uvicorn gives the API: uvloop where installed (uvicorn[standard] brings it except on Windows),
    # which does the loop's bookkeeping and socket calls (Redis, PostgreSQL, HTTP) in C, a good part of a worker's CPU.
    loop_factory = auto_loop_factory()
    with contextlib.suppress(asyncio.CancelledError), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(settings, process_options(settings, queue_names), burst=burst))
