"""arq's `Worker`, without the Redis round trips it spends on jobs it is running itself.

arq keeps a running job in its queue's sorted set until the job finishes, and each poll (every `poll_delay`)
reads the due ids and checks each of them with four round trips (WATCH and EXISTS of the in-progress key, ZSCORE,
UNWATCH) before it skips the ones in progress. A process holding a hundred LLM turns of ~4 s each would ask Redis
about every one of them twenty times a second: at 600 conversations a minute, about 300 round trips per
conversation and a fifth of the worker's CPU (bench/bench_load.py, realistic LLM case).
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.worker import Worker


class QueueWorker(Worker):
    """A `Worker` that skips, without asking Redis, the due ids of jobs it is running right now.

    arq's own check would skip them too: their in-progress key is this worker's. A job whose run has ended but is
    due again (an arq `Retry` re-enqueues it under the same id) is checked as arq checks it."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        await super().start_jobs([job_id for job_id in job_ids if not _running(self.tasks.get(job_id.decode()))])


def _running(task: asyncio.Task[Any] | None) -> bool:
    return task is not None and not task.done()
