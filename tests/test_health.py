from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis

from salesbot.app import create_app
from salesbot.devstack import EmbeddedRedis
from salesbot.health.service import MESSAGING_HEARTBEAT_KEY, SCHEDULED_HEARTBEAT_KEY, WORKER_HEARTBEAT_KEY
from salesbot.settings import Settings
from tests.conftest import WorkerRunner, make_settings


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client


async def test_healthz_answers_without_dependencies(settings: Settings) -> None:
    async with running_app(settings) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_a_live_worker(
    settings: Settings, redis: ArqRedis, run_worker: WorkerRunner
) -> None:
    await run_worker()  # real arq workers, one per queue, record their heartbeats
    assert await redis.exists(WORKER_HEARTBEAT_KEY, MESSAGING_HEARTBEAT_KEY, SCHEDULED_HEARTBEAT_KEY) == 3
    async with running_app(settings) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["pgvector"]["detail"].startswith("vector 0.")
    assert all(check["ok"] for check in body["checks"].values())


async def test_readyz_reports_missing_worker(settings: Settings, redis: ArqRedis) -> None:
    async with running_app(settings) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


async def test_readyz_reports_a_queue_without_a_worker(settings: Settings, redis: ArqRedis) -> None:
    # Workers started with `--queues turns` only: replies would be written and never sent, sweeps never run.
    await redis.set(WORKER_HEARTBEAT_KEY, "alive", px=30_000)
    async with running_app(settings) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["worker"]["ok"] is False
    assert "messaging and scheduled" in body["checks"]["worker"]["detail"]
    assert "turns" not in body["checks"]["worker"]["detail"]


async def test_readyz_reports_a_dead_redis(database_url: str, tmp_path: Path) -> None:
    doomed = EmbeddedRedis(tmp_path, persistent=False)
    doomed.start()
    settings = make_settings(database_url, doomed.url)
    try:
        async with running_app(settings) as client:
            async with Redis.from_url(doomed.url) as direct:
                beats = (WORKER_HEARTBEAT_KEY, MESSAGING_HEARTBEAT_KEY, SCHEDULED_HEARTBEAT_KEY)
                await direct.mset(dict.fromkeys(beats, "alive"))
            assert (await client.get("/readyz")).status_code == 200
            doomed.stop()
            response = await client.get("/readyz")
    finally:
        doomed.stop()  # a no-op when it is already gone; never leak a server from a failed test
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["pgvector"]["ok"] is True
