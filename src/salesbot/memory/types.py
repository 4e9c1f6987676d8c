"""The facts the memory keeps and what recall returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class MemoryKind(StrEnum):
    """Stored in `customer_memories.kind`."""

    PRODUCT = "product"  # a product shown to the customer (search_products / get_product)
    CHOICE = "choice"  # a product the customer chose, with the quantity
    QUOTE = "quote"  # a quotation made for the customer
    COMPANY = "company"  # the customer's company (one per customer: the newest wins)
    NEED = "need"  # what the customer was looking for (one per customer: the newest wins)
    STAGE = "stage"  # how far the last conversation got in the funnel (one per customer)


@dataclass(frozen=True)
class FactDraft:
    """A fact learnt in a turn; (kind, key) identifies it, so the same fact is stored once."""

    kind: MemoryKind
    key: str
    text: str


@dataclass(frozen=True)
class RecalledFact:
    kind: MemoryKind
    text: str
    conversation_id: int | None
    updated_at: datetime
    # Cosine similarity to the query (None when listed by recency, without a query vector).
    similarity: float | None = None
