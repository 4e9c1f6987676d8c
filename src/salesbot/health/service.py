"""Readiness checks: database, pgvector, Redis, a live worker heartbeat, a loadable playbook, and the inbox spool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text

from salesbot import queues
from salesbot.agent.playbook import load_playbook
from salesbot.inbox import spool
from salesbot.resources import Resources
from salesbot.settings import Settings

# arq writes these keys (with a TTL) on every health check of a running worker: one per queue (a worker process
# serves them all unless started with `--queues`).
WORKER_HEARTBEAT_KEY = queues.heartbeat_key(queues.TURNS)
MESSAGING_HEARTBEAT_KEY = queues.heartbeat_key(queues.MESSAGING)
SCHEDULED_HEARTBEAT_KEY = queues.heartbeat_key(queues.SCHEDULED)
CHECK_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    latency_ms: float


async def _database(resources: Resources) -> str:
    async with resources.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return "connected"


async def _pgvector(resources: Resources) -> str:
    async with resources.engine.connect() as connection:
        version = await connection.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    if version is None:
        raise RuntimeError("vector extension is not installed (run `salesbot migrate`)")
    return f"vector {version}"


async def _redis(resources: Resources) -> str:
    await resources.redis.ping()
    return "pong"


async def _worker(resources: Resources) -> str:
    found = await resources.redis.mget(WORKER_HEARTBEAT_KEY, MESSAGING_HEARTBEAT_KEY, SCHEDULED_HEARTBEAT_KEY)
    beats = dict(zip(("turns", "messaging", "scheduled"), found, strict=True))
    missing = [queue for queue, beat in beats.items() if beat is None]
    if missing:
        raise RuntimeError(
            f"no worker heartbeat for the {' and '.join(missing)} queue in the last interval"
            " (is `salesbot worker` running?)"
        )
    return "; ".join(f"{queue}: {beat.decode() if isinstance(beat, bytes) else beat}" for queue, beat in beats.items())


def describe_playbook(settings: Settings) -> str:
    """The business the playbook speaks for; raises `PlaybookError` when it cannot be read or is invalid."""
    playbook = load_playbook(settings.conversation.playbook_path or None)
    return f"{playbook.company.name} ({settings.conversation.playbook_path or 'the shipped demo playbook'})"


async def _playbook(resources: Resources) -> str:
    return describe_playbook(resources.settings)


async def _inbox_spool(resources: Resources) -> str:
    # Informational: webhooks accepted while the database was down wait here; a backlog is not unreadiness (the
    # API must keep accepting), the database check already reports the outage itself.
    found = await spool.backlog(resources.redis)
    return f"{found.pending} waiting, {found.dead} dead-lettered"


CHECKS: dict[str, Callable[[Resources], Awaitable[str]]] = {
    "database": _database,
    "pgvector": _pgvector,
    "redis": _redis,
    "worker": _worker,
    "playbook": _playbook,
    "inbox_spool": _inbox_spool,
}


async def _run(check: Callable[[Resources], Awaitable[str]], resources: Resources) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(resources), CHECK_TIMEOUT_SECONDS)
        ok = True
    except TimeoutError:
        detail, ok = f"timed out after {CHECK_TIMEOUT_SECONDS:.0f}s", False
    except Exception as exc:  # every failure of a dependency is a readiness answer, not a crash
        detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
    return CheckResult(ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def check_readiness(resources: Resources) -> dict[str, CheckResult]:
    results = await asyncio.gather(*(_run(check, resources) for check in CHECKS.values()))
    return dict(zip(CHECKS, results, strict=True))
