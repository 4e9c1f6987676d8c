"""What retrieval returns and the interface the agent's tools use (`salesbot.knowledge.search` implements it)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class ProductFilters:
    max_price: Decimal | None = None
    min_price: Decimal | None = None
    category: str | None = None
    in_stock_only: bool = False
    # Inactive (deactivated) products are never offered to customers.
    active_only: bool = True


@dataclass(frozen=True)
class ProductHit:
    sku: str
    name: str
    price: Decimal
    currency: str
    stock: int
    category: str
    description: str  # shortened for the model's context
    score: float


@dataclass(frozen=True)
class KnowledgeHit:
    source: str
    title: str
    content: str
    score: float


class CatalogSearch(Protocol):
    """Retrieval over the catalog and the knowledge base of one database session."""

    async def search_products(
        self, query: str, *, filters: ProductFilters | None = None, limit: int = 5
    ) -> list[ProductHit]: ...

    async def get_product(self, sku: str) -> ProductHit | None: ...

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]: ...
