"""Apply an inventory snapshot to the catalog, and pick the configured source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.kit.logging import get_logger
from salesbot.knowledge.catalog_files import RowError
from salesbot.knowledge.inventory.base import InventorySnapshot, InventorySource
from salesbot.knowledge.inventory.file_source import FileInventorySource
from salesbot.knowledge.inventory.zoho import ZohoInventorySource
from salesbot.knowledge.repository import WRITE_BATCH, lock_catalog
from salesbot.models import Product
from salesbot.settings import InventorySettings

log = get_logger(__name__)


@dataclass
class SyncReport:
    source: str
    seen: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown: int = 0  # SKUs the source has and the catalog does not (imports create products, syncs do not)
    rejected: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.source}: {self.seen} items, updated {self.updated}, unchanged {self.unchanged}, "
            f"unknown {self.unknown}, rejected {len(self.rejected)}"
        )


async def apply_snapshot(
    session: AsyncSession, snapshot: InventorySnapshot, *, source: str, update_prices: bool = True
) -> SyncReport:
    """Write stock (and prices, unless disabled) of known SKUs; flushes, the caller commits."""
    report = SyncReport(source=source, seen=len(snapshot.levels), rejected=list(snapshot.rejected))
    await lock_catalog(session)
    latest = {level.sku: level for level in snapshot.levels}  # a SKU listed twice: the last entry wins
    columns = (Product.id, Product.sku, Product.stock, Product.price, Product.currency)
    rows = list(await session.execute(select(*columns).where(Product.sku.in_(list(latest))))) if latest else []
    now = datetime.now(UTC)
    changes: list[dict[str, Any]] = []
    known: set[str] = set()
    for row in rows:
        known.add(row.sku)
        level = latest[row.sku]
        values: dict[str, Any] = {}
        if level.stock is not None and level.stock != row.stock:
            values["stock"] = level.stock
        if update_prices and level.price is not None and level.price != row.price:
            values["price"] = level.price
        if update_prices and level.currency and level.currency != row.currency:
            values["currency"] = level.currency
        if values:
            changes.append({"id": row.id, "stock": row.stock, "price": row.price, "currency": row.currency, **values})
        else:
            report.unchanged += 1
    for start in range(0, len(changes), WRITE_BATCH):
        batch = [{**change, "updated_at": now} for change in changes[start : start + WRITE_BATCH]]
        await session.execute(update(Product), batch)
    report.updated = len(changes)
    report.unknown = len(set(latest) - known)
    await session.flush()
    return report


def build_source(settings: InventorySettings, http: httpx.AsyncClient) -> InventorySource | None:
    """The configured source, or None when inventory sync is off (or not fully configured)."""
    if not settings.enabled:
        return None
    if settings.source == "file":
        return FileInventorySource(Path(settings.file_path))
    return ZohoInventorySource(
        http=http,
        client_id=settings.zoho_client_id,
        client_secret=settings.zoho_client_secret.get_secret_value(),
        refresh_token=settings.zoho_refresh_token.get_secret_value(),
        organization_id=settings.zoho_organization_id,
        accounts_url=settings.zoho_accounts_url,
        api_url=settings.zoho_api_url,
        stock_field=settings.zoho_stock_field,
    )
