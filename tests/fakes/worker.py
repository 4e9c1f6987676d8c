"""A real arq worker running in the test's event loop with the production job functions.

Only the context differs from production: the test's resources, the providers built from them and a test
double as the reply generator. Cron jobs are left out (tests call the sweeps directly, deterministically).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.worker import Worker

from salesbot.agent.reply import ReplyGenerator
from salesbot.messaging.registry import build_providers
from salesbot.resources import Resources
from salesbot.worker import WorkerSettings


class PipelineWorker:
    def __init__(self, resources: Resources, generator: ReplyGenerator) -> None:
        self.resources = resources
        self.generator = generator
        self._worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    def _build(self, *, burst: bool) -> Worker:
        resources, generator = self.resources, self.generator

        async def startup(ctx: dict[str, Any]) -> None:
            ctx["resources"] = resources
            ctx["providers"] = build_providers(resources)
            ctx["reply_generator"] = generator

        return Worker(
            functions=WorkerSettings.functions,
            cron_jobs=[],
            redis_pool=resources.redis,
            on_startup=startup,
            burst=burst,
            poll_delay=0.01,
            handle_signals=False,
            job_timeout=resources.settings.worker_job_timeout_seconds,
            max_tries=WorkerSettings.max_tries,
            keep_result=0,
            max_jobs=20,
        )

    async def drain(self) -> Worker:
        """Run until no job is queued or deferred (deferred ones are waited for) and none is running."""
        worker = self._build(burst=True)
        await worker.main()
        worker._pool = None  # the pool is the test's, not the worker's
        return worker

    async def start(self) -> None:
        self._worker = self._build(burst=False)
        self._task = asyncio.create_task(self._worker.main())

    async def idle(self, timeout: float = 30) -> None:
        """Wait until the background worker has nothing queued, deferred or running."""
        assert self._worker is not None
        worker = self._worker
        async with asyncio.timeout(timeout):
            while True:
                queued = await self.resources.redis.zcard(worker.queue_name)
                if queued == 0 and worker.job_counter == 0:
                    # Settle: a finishing job may enqueue a follow-up right after its counter drops.
                    await asyncio.sleep(0.05)
                    if await self.resources.redis.zcard(worker.queue_name) == 0 and worker.job_counter == 0:
                        return
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is None or self._worker is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for task in list(self._worker.tasks.values()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._worker.tasks.values(), return_exceptions=True)
        self._worker._pool = None
        self._task = self._worker = None
