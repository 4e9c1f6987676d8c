"""arq queue names: the contract between every place that enqueues a job and the workers that serve it.

Turns wait on the LLM for seconds; deliveries and takeovers are short; cron jobs recur on their schedule. Each
queue is served by its own arq worker with its own slots (`salesbot.worker`), so deliveries and takeovers never
wait behind model calls, and a cron job's timeout (the inventory sync allows itself 300 s) does not stretch the
crash-recovery lease of a turn or a delivery.
"""

from __future__ import annotations

from typing import Final

from arq.constants import health_check_key_suffix

# Conversation turns (`run_turn`). arq's default queue name: turns and their deferred wake-ups queued by a version
# before the split still run after an upgrade, and `arq:queue:health-check` stays the turn worker's heartbeat.
TURNS: Final = "arq:queue"
# Deliveries (the outbox) and manager takeovers.
MESSAGING: Final = "salesbot:queue:messaging"
# The cron jobs, each with its own timeout: the sweeps, the inbox spool drain, expiring takeovers and the
# inventory sync. A killed run waits out its long lease, which costs nothing: the next scheduled run comes first.
SCHEDULED: Final = "salesbot:queue:scheduled"

# The names `salesbot worker --queues` accepts.
BY_NAME: Final[dict[str, str]] = {"turns": TURNS, "messaging": MESSAGING, "scheduled": SCHEDULED}


def heartbeat_key(queue: str) -> str:
    """The key arq refreshes (with a TTL) on every health check of a running worker of `queue`."""
    return queue + health_check_key_suffix
