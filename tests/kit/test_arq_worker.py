"""QueueWorker on a real Redis: the jobs it runs cost it no Redis checks per poll, and arq's guarantees hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from arq.worker import Worker, func

from salesbot.devstack import EmbeddedRedis
from salesbot.kit import redis_client
from salesbot.kit.arq_worker import QueueWorker
from tests.fakes.waiting import eventually

QUEUE = "sb:test:queue-worker"
POLLS = 20


class Held:
    """A job that runs until the test lets it finish, counting its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def run(self, ctx: dict[str, Any]) -> None:
        self.runs += 1
        await self.release.wait()


@asynccontextmanager
async def running(
    server: EmbeddedRedis, job: Callable[..., Any], *, cls: type[Worker] = QueueWorker
) -> AsyncIterator[Worker]:
    worker = cls(
        functions=[func(job, name="job")],
        queue_name=QUEUE,
        redis_pool=await redis_client.connect(server.url),  # closed with the worker
        poll_delay=0.005,
        keep_result=0,
        allow_abort_jobs=False,
        handle_signals=False,
    )
    run = asyncio.ensure_future(worker.async_run())
    try:
        yield worker
    finally:
        await worker.close()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def calls(redis: ArqRedis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def watches_during_polls(redis: ArqRedis) -> int:
    """WATCH commands sent while the worker polls its queue POLLS times (one ZRANGEBYSCORE each)."""
    await redis.config_resetstat()
    await eventually(lambda: _at_least(redis, "zrangebyscore", POLLS), what=f"{POLLS} polls")
    return await calls(redis, "watch")


async def _at_least(redis: ArqRedis, command: str, count: int) -> bool:
    return await calls(redis, command) >= count


@pytest.mark.parametrize(("cls", "checks_its_own_job"), [(QueueWorker, False), (Worker, True)])
async def test_a_job_the_worker_runs_is_not_checked_in_redis_on_every_poll(
    redis: ArqRedis, redis_server: EmbeddedRedis, cls: type[Worker], checks_its_own_job: bool
) -> None:
    job = Held()
    await redis.enqueue_job("job", _queue_name=QUEUE, _job_id="held")
    async with running(redis_server, job.run, cls=cls) as worker:
        await eventually(lambda: _true(job.runs == 1), what="the job to start")
        watches = await watches_during_polls(redis)
        # arq's Worker asks Redis about its own running job on every poll; QueueWorker does not.
        if checks_its_own_job:
            assert watches >= POLLS - 1
        else:
            assert watches == 0
        job.release.set()
        await eventually(lambda: _true(not worker.tasks or all(t.done() for t in worker.tasks.values())), what="end")
    assert job.runs == 1
    assert await redis.zcard(QUEUE) == 0


async def test_a_job_retried_under_its_id_runs_again_in_the_same_worker(
    redis: ArqRedis, redis_server: EmbeddedRedis
) -> None:
    runs: list[int] = []

    async def flaky(ctx: dict[str, Any]) -> str:
        runs.append(ctx["job_try"])
        if len(runs) == 1:
            raise Retry(defer=0.01)
        return "done"

    await redis.enqueue_job("job", _queue_name=QUEUE, _job_id="flaky")
    async with running(redis_server, flaky):
        await eventually(lambda: _true(len(runs) == 2), what="the retry to run")
        await eventually(lambda: _zero(redis.zcard(QUEUE)), what="the job to leave the queue")
    assert runs == [1, 2]


async def test_a_job_running_in_another_worker_is_not_started_again(
    redis: ArqRedis, redis_server: EmbeddedRedis
) -> None:
    job = Held()
    await redis.enqueue_job("job", _queue_name=QUEUE, _job_id="held")
    async with running(redis_server, job.run), running(redis_server, job.run):
        await eventually(lambda: _true(job.runs == 1), what="the job to start")
        # The second worker does not run it, so it checks it in Redis on each poll, and skips it.
        await redis.config_resetstat()
        await eventually(lambda: _at_least(redis, "zscore", POLLS), what="the other worker's checks")
        assert job.runs == 1
        job.release.set()
        await eventually(lambda: _zero(redis.zcard(QUEUE)), what="the job to finish")
    assert job.runs == 1


async def _true(value: bool) -> bool:
    return value


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0
