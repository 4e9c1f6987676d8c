"""Inventory from a file export (CSV, JSON or JSON Lines): columns `sku`, `stock`, optional `price`, `currency`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from salesbot.knowledge.catalog_files import IngestError, RowError, read_rows
from salesbot.knowledge.catalog_rows import RowProblem, as_text, parse_currency, parse_price, parse_stock
from salesbot.knowledge.inventory.base import InventoryRejectedError, InventorySnapshot, StockLevel


@dataclass
class FileInventorySource:
    """Reads the export at `path` on every sync (a warehouse system that drops a file on a share, say)."""

    path: Path
    name: str = "file"

    def _read(self) -> InventorySnapshot:
        if not self.path.is_file():
            raise InventoryRejectedError(f"inventory file {self.path} does not exist")
        try:
            rows, rejected = read_rows(self.path, required=("sku", "stock"))
        except IngestError as exc:
            raise InventoryRejectedError(f"inventory file {self.path}: {exc}") from exc
        levels: list[StockLevel] = []
        for row in rows:
            sku = ""
            try:
                sku = as_text(row.values.get("sku"), column="sku")
                if not sku:
                    raise RowProblem("sku", "is missing")
                if as_text(row.values.get("stock")) == "":
                    raise RowProblem("stock", "is missing")
                price_raw = row.values.get("price")
                levels.append(
                    StockLevel(
                        sku=sku,
                        stock=parse_stock(row.values.get("stock")),
                        price=None if as_text(price_raw) == "" else parse_price(price_raw),
                        currency=parse_currency(row.values.get("currency"), default="") or None,
                    )
                )
            except RowProblem as problem:
                rejected.append(RowError(row.line, str(problem), sku or None, row.unit))
        return InventorySnapshot(levels, rejected)

    async def fetch(self) -> InventorySnapshot:
        return await asyncio.to_thread(self._read)
