"""The typed context every arq job receives (built in `worker.startup`)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, TypedDict

from arq.connections import ArqRedis

from salesbot.resources import Resources

if TYPE_CHECKING:
    from salesbot.agent.reply import ReplyGenerator
    from salesbot.messaging.registry import Providers


class WorkerContext(TypedDict, total=False):
    # Set by arq itself.
    redis: ArqRedis
    job_id: str
    job_try: int
    # Set by salesbot's startup.
    resources: Resources
    exit_stack: AsyncExitStack
    # The messaging adapters (built from `resources`) and the agent entry point used by conversation turns.
    providers: Providers
    reply_generator: ReplyGenerator
