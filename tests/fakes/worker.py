"""Real arq workers, one per queue as in `salesbot worker`, running in the test's event loop with the production
job functions and limits.

Only the context differs from production: the test's resources, the providers built from them and a test
double as the reply generator. Cron jobs are left out unless asked for (tests call the sweeps directly,
deterministically), and with them the scheduled queue's worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from arq.worker import Worker

from salesbot.agent.reply import ReplyGenerator
from salesbot.kit.arq_worker import QueueWorker
from salesbot.messaging.registry import build_providers
from salesbot.resources import Resources
from salesbot.worker import has_jobs, process_options


@dataclass
class DrainReport:
    """What the workers of a drain did, summed over the queues."""

    jobs_complete: int = 0
    jobs_retried: int = 0
    jobs_failed: int = 0

    def add(self, worker: Worker) -> None:
        self.jobs_complete += worker.jobs_complete
        self.jobs_retried += worker.jobs_retried
        self.jobs_failed += worker.jobs_failed


class PipelineWorker:
    def __init__(
        self, resources: Resources, generator: ReplyGenerator, *, cron: bool = False, **overrides: Any
    ) -> None:
        self.resources = resources
        self.generator = generator
        self.cron = cron
        # Worker options applied to every queue's worker (e.g. `max_jobs`).
        self.overrides = overrides
        self._workers: list[Worker] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def queue_names(self) -> list[str]:
        return [str(options["queue_name"]) for options in self._options()]

    def _options(self) -> list[dict[str, Any]]:
        production = process_options(self.resources.settings)
        if self.cron:
            return production
        without_cron = ({**options, "cron_jobs": []} for options in production)
        return [options for options in without_cron if has_jobs(options)]

    def _build(self, *, burst: bool) -> list[Worker]:
        ctx = {
            "resources": self.resources,
            "providers": build_providers(self.resources),
            "reply_generator": self.generator,
        }
        return [
            QueueWorker(
                **{**options, "poll_delay": 0.01, **self.overrides},
                ctx=dict(ctx),
                redis_pool=self.resources.redis,
                burst=burst,
                handle_signals=False,
            )
            for options in self._options()
        ]

    async def _pending(self) -> int:
        return sum([await self.resources.redis.zcard(queue) for queue in self.queue_names])

    async def drain(self) -> DrainReport:
        """Run until no job is queued or deferred (deferred ones are waited for) on any queue and none is running.

        A queue's burst worker stops when its queue is empty, while a job of another queue may still enqueue to it
        (a turn enqueues its delivery): rounds repeat until every queue stays empty.
        """
        report = DrainReport()
        while True:
            workers = self._build(burst=True)
            await asyncio.gather(*(worker.main() for worker in workers))
            for worker in workers:
                report.add(worker)
            if await self._pending() == 0:
                return report

    async def start(self) -> None:
        self._workers = self._build(burst=False)
        self._tasks = [asyncio.create_task(worker.main()) for worker in self._workers]

    async def idle(self, timeout: float = 30) -> None:
        """Wait until the background workers have nothing queued, deferred or running."""
        assert self._workers

        async def quiet() -> bool:
            return await self._pending() == 0 and all(worker.job_counter == 0 for worker in self._workers)

        async with asyncio.timeout(timeout):
            while True:
                if await quiet():
                    # Settle: a finishing job may enqueue a follow-up right after its counter drops.
                    await asyncio.sleep(0.05)
                    if await quiet():
                        return
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        jobs = [task for worker in self._workers for task in worker.tasks.values()]
        for task in jobs:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*jobs, return_exceptions=True)
        self._tasks, self._workers = [], []
