"""Keep the garbage collector's full passes short in long-running processes.

A process that has imported FastAPI, SQLAlchemy, pydantic-ai and loaded its models holds a few hundred thousand
long-lived objects. CPython's oldest-generation collection walks all of them: about 200 ms on the development
machine, during which the event loop serves nothing (bench/bench_webhook.py showed it as the inbox's p99: one
stall of 215 ms per few thousand webhooks). Those objects live as long as the process, so they are moved out of
the collector's reach once startup is done (`gc.freeze`, the approach CPython documents for this case); what the
process allocates afterwards is still collected as usual.
"""

from __future__ import annotations

import gc

from salesbot.kit.logging import get_logger

log = get_logger(__name__)


def freeze_startup_heap() -> None:
    """Collect once, then exclude every object alive now from future collections (call at the end of startup)."""
    gc.collect()
    gc.freeze()
    log.info("process.heap_frozen", objects=gc.get_freeze_count())
