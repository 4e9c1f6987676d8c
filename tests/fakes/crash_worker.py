"""A worker process for crash tests: the production worker process (settings from the environment, one arq worker
per queue, real job functions and providers) with a scripted agent that hangs on its first call per conversation,
so the test can SIGKILL it mid-generation. Run as `python -m tests.fakes.crash_worker`.
"""

from __future__ import annotations

import asyncio
import contextlib

from salesbot.agent.reply import AgentReply, ReplyRequest
from salesbot.kit.logging import configure_logging
from salesbot.settings import get_settings
from salesbot.worker import has_jobs, process_options, serve

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
    # Sweeps stay out of the way: recovery here must come from arq re-running the killed worker's jobs. The
    # scheduled queue keeps the inventory sync (when the test configures one) and with it its 300 s timeout.
    options = [
        {**entry, "cron_jobs": [job for job in entry["cron_jobs"] if job.name == "sync_inventory"]}
        for entry in process_options(settings)
    ]
    options = [entry for entry in options if has_jobs(entry)]
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(serve(settings, options, generator=scripted_reply))


if __name__ == "__main__":
    main()
