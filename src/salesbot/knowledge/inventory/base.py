"""The interface every inventory source implements and the errors it may raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from salesbot.knowledge.catalog_files import RowError


@dataclass(frozen=True)
class StockLevel:
    """What the external system says about one SKU; `None` means "not reported, leave as is"."""

    sku: str
    stock: int | None = None
    price: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class InventorySnapshot:
    levels: Sequence[StockLevel]
    # Entries the source could not use (bad numbers, missing SKU), reported but not fatal.
    rejected: Sequence[RowError] = field(default_factory=tuple)


class InventoryError(RuntimeError):
    """The source could not be read; `retryable` tells whether trying again later may help."""

    retryable: bool = False


class InventoryUnavailableError(InventoryError):
    """Network trouble, a timeout, a 5xx or a rate limit: the next scheduled sync tries again."""

    retryable = True


class InventoryRejectedError(InventoryError):
    """Bad credentials, a missing file, a malformed answer: needs a person to fix the configuration."""


class InventorySource(Protocol):
    name: str

    async def fetch(self) -> InventorySnapshot:
        """Every SKU the external system knows, with its stock and (optionally) price."""
        ...
