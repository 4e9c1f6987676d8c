"""A worker process for crash tests: the production worker (settings from the environment, real job functions and
providers) with a scripted agent that hangs on its first call per conversation, so the test can SIGKILL it
mid-generation. Run as `python -m tests.fakes.crash_worker`.
"""

from __future__ import annotations

import asyncio
import os

from arq.worker import Worker

from salesbot.agent.reply import AgentReply, ReplyRequest
from salesbot.kit.logging import configure_logging
from salesbot.settings import get_settings
from salesbot.worker import worker_options

HANGING_KEY = "test:crash:hanging"


async def scripted_reply(request: ReplyRequest) -> AgentReply:
    redis = request.resources.redis
    if await redis.set(f"test:crash:hung:{request.conversation.id}", 1, nx=True):
        await redis.incr(HANGING_KEY)
        await asyncio.sleep(3600)  # the test kills the process here
    text = "Answer to: " + " | ".join(message.text for message in request.new_messages)
    return AgentReply(text=text, model="scripted")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    options = worker_options(settings, generator=scripted_reply)
    # Sweeps stay out of the way: recovery here must come from arq re-running the killed worker's jobs.
    options["cron_jobs"] = []
    worker = Worker(**options, poll_delay=0.05)
    # arq re-runs a dead worker's job when its in-progress key expires (job timeout + 10 s). The test shortens
    # that lease, keeping it above the per-chat lock's TTL (job timeout + 2 s) exactly as in production.
    lease = os.environ.get("CRASH_TEST_LEASE_SECONDS")
    if lease:
        worker.in_progress_timeout_s = float(lease)
    worker.run()


if __name__ == "__main__":
    main()
