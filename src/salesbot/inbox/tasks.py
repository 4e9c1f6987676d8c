"""arq jobs of the inbox: draining the spool that holds webhooks accepted while PostgreSQL was down."""

from __future__ import annotations

from salesbot.inbox import spool
from salesbot.worker_context import WorkerContext

# The cron runs every few seconds: an empty spool costs one XLEN, and a database that comes back is noticed soon.
DRAIN_EVERY_SECONDS = 5
# Past the drain's own budget (a hung database is cut off here), within the lifetime of its lock, and no longer
# than the other sweeps: arq leases every job for the longest cron timeout.
DRAIN_TIMEOUT_SECONDS = spool.DRAIN_BUDGET_SECONDS + 10


async def drain_inbox_spool(ctx: WorkerContext) -> str:
    """Cron: feed spooled webhook events into the inbox once the database answers again."""
    report = await spool.drain(ctx["resources"])
    if report.busy:
        return "busy"
    state = " (database unreachable)" if report.paused else ""
    return f"drained={report.drained} dead={report.dead} backlog={report.backlog}{state}"
