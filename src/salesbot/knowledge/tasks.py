"""Worker-side knowledge work: loading the embedding model at startup and the inventory sync cron job."""

from __future__ import annotations

from typing import Any, cast

from arq import cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine

from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import get_embedder, warm_up
from salesbot.knowledge.inventory.base import InventoryError, InventorySource
from salesbot.knowledge.inventory.service import SyncReport, apply_snapshot, build_source
from salesbot.knowledge.reindex import embedding_status
from salesbot.resources import Resources
from salesbot.settings import Settings
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

INVENTORY_JOB_TIMEOUT_SECONDS = 300
# One source per process and configuration, so a Zoho access token is reused until it expires.
_sources: dict[tuple[Any, ...], InventorySource] = {}


async def prepare_knowledge(resources: Resources) -> None:
    """Worker startup: load the embedding model now (a missing model fails the start, not a customer's turn)
    and warn when stored vectors belong to another model (`salesbot reindex` fixes it)."""
    embedder = get_embedder(resources.settings)
    await warm_up(embedder)
    async with resources.sessionmaker() as session:
        for status in await embedding_status(session, embedder):
            if status.needs_reindex:
                log.warning(
                    "knowledge.reindex_needed",
                    table=status.table,
                    rows=status.rows,
                    current=status.current,
                    column_dim=status.column_dim,
                    model=embedder.name,
                    model_dim=status.model_dim,
                )


def _source(resources: Resources) -> InventorySource | None:
    config = resources.settings.inventory
    key = (config.model_dump_json(), id(resources.http))
    source = _sources.get(key)
    if source is None:
        source = build_source(config, resources.http)
        if source is not None:
            _sources[key] = source
    return source


async def run_inventory_sync(resources: Resources) -> SyncReport | None:
    """Fetch the configured source and apply it in one transaction; None when sync is off."""
    source = _source(resources)
    if source is None:
        return None
    snapshot = await source.fetch()
    async with unit_of_work(resources.sessionmaker) as session:
        report = await apply_snapshot(
            session, snapshot, source=source.name, update_prices=resources.settings.inventory.update_prices
        )
    log.info(
        "inventory.synced",
        source=report.source,
        seen=report.seen,
        updated=report.updated,
        unchanged=report.unchanged,
        unknown=report.unknown,
        rejected=len(report.rejected),
    )
    for error in report.rejected[:20]:
        log.warning("inventory.entry_rejected", source=report.source, entry=str(error))
    return report


async def sync_inventory(ctx: WorkerContext) -> str:
    """The cron job: a failed sync is logged and retried at the next scheduled run."""
    try:
        report = await run_inventory_sync(ctx["resources"])
    except InventoryError as exc:
        log.warning("inventory.sync_failed", error=str(exc), retryable=exc.retryable)
        return f"failed: {exc}"
    return "off" if report is None else report.summary()


def inventory_cron_jobs(settings: Settings) -> list[CronJob]:
    """The sync cron job when an inventory source is configured, every INVENTORY_SYNC_MINUTES."""
    config = settings.inventory
    if not config.enabled:
        return []
    minutes = config.sync_minutes
    schedule: dict[str, Any]
    if minutes < 60:
        schedule = {"minute": set(range(0, 60, minutes))}
    else:
        schedule = {"hour": set(range(0, 24, max(1, minutes // 60))), "minute": {0}}
    return [
        cron(
            cast(WorkerCoroutine, sync_inventory),
            name="sync_inventory",
            second={30},
            run_at_startup=True,
            unique=True,
            timeout=INVENTORY_JOB_TIMEOUT_SECONDS,
            **schedule,
        )
    ]
