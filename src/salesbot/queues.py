"""arq queue names: the contract between every place that enqueues a job and the workers that serve it.

Turns wait on the LLM for seconds; everything else is short. Each queue is served by its own arq worker with its
own slots (`salesbot.worker`), so deliveries and takeovers never wait behind model calls, and a long job's
timeout does not stretch the crash-recovery lease of a turn.
"""

from __future__ import annotations

from typing import Final

from arq.constants import health_check_key_suffix

# Conversation turns (`run_turn`). arq's default queue name: turns and their deferred wake-ups queued by a version
# before the split still run after an upgrade, and `arq:queue:health-check` stays the turn worker's heartbeat.
TURNS: Final = "arq:queue"
# Deliveries, takeovers and the short cron jobs (sweeps, the inbox spool drain, expiring takeovers).
MESSAGING: Final = "salesbot:queue:messaging"
# Long jobs with their own timeout: the inventory sync.
LONG: Final = "salesbot:queue:long"

# The names `salesbot worker --queues` accepts.
BY_NAME: Final[dict[str, str]] = {"turns": TURNS, "messaging": MESSAGING, "long": LONG}


def heartbeat_key(queue: str) -> str:
    """The key arq refreshes (with a TTL) on every health check of a running worker of `queue`."""
    return queue + health_check_key_suffix
