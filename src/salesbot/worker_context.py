"""The typed context every arq job receives (built in `worker.startup`)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TypedDict

from arq.connections import ArqRedis

from salesbot.resources import Resources


class WorkerContext(TypedDict, total=False):
    # Set by arq itself.
    redis: ArqRedis
    job_id: str
    job_try: int
    # Set by salesbot's startup.
    resources: Resources
    exit_stack: AsyncExitStack
