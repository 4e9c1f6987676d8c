"""arq composition root: the jobs, cron jobs and the worker context's lifecycle."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, ClassVar, cast

from arq import cron
from arq.typing import WorkerCoroutine

from salesbot.conversations.tasks import release_expired_takeovers
from salesbot.kit.logging import configure_logging, get_logger
from salesbot.resources import open_resources, redis_settings
from salesbot.settings import Settings, get_settings
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

# A job whose worker was SIGKILLed is re-run after job_timeout (+ ~10 s arq overhead): keep recovery near a minute.
JOB_TIMEOUT_SECONDS = 45
HEALTH_CHECK_INTERVAL_SECONDS = 10


def build_startup(settings: Settings | None) -> Any:
    """The worker's on_startup; `None` reads the settings from the environment when the worker starts."""

    async def startup(ctx: WorkerContext) -> None:
        resolved = settings or get_settings()
        stack = AsyncExitStack()
        ctx["exit_stack"] = stack
        ctx["resources"] = await stack.enter_async_context(open_resources(resolved, redis=ctx["redis"]))
        log.info("worker.started", env=resolved.env.value)

    return startup


async def shutdown(ctx: WorkerContext) -> None:
    stack = ctx.get("exit_stack")
    if stack is not None:
        await stack.aclose()
    log.info("worker.stopped")


class WorkerSettings:
    """The worker's jobs and limits; `salesbot worker` runs it with the configured Redis URL."""

    functions: ClassVar[list[WorkerCoroutine]] = []
    cron_jobs: ClassVar[list[Any]] = [
        cron(
            cast(WorkerCoroutine, release_expired_takeovers), second={0}, run_at_startup=False, unique=True, timeout=30
        ),
    ]
    on_startup = staticmethod(build_startup(None))
    on_shutdown = staticmethod(shutdown)
    job_timeout = JOB_TIMEOUT_SECONDS
    max_tries = 8
    keep_result = 0
    health_check_interval = HEALTH_CHECK_INTERVAL_SECONDS
    allow_abort_jobs = True


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (used by the CLI and by tests with their own settings)."""
    return {
        "functions": WorkerSettings.functions,
        "cron_jobs": WorkerSettings.cron_jobs,
        "on_startup": build_startup(settings),
        "on_shutdown": shutdown,
        "job_timeout": WorkerSettings.job_timeout,
        "max_tries": WorkerSettings.max_tries,
        "keep_result": WorkerSettings.keep_result,
        "health_check_interval": WorkerSettings.health_check_interval,
        "allow_abort_jobs": WorkerSettings.allow_abort_jobs,
        "redis_settings": redis_settings(settings.redis_url),
    }


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    from arq.worker import Worker

    configure_logging(settings.log_level)
    worker = Worker(**worker_options(settings), burst=burst)
    worker.run()
