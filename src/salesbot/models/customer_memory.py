from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.kit.pgvector_binary import BinaryVector
from salesbot.models._columns import created_at_column, updated_at_column
from salesbot.models.product import EMBEDDING_DIM


class CustomerMemory(Base):
    """A fact worth remembering about a customer across conversations (products discussed, quotes, company...).

    One row per (customer, kind, key): the same fact is stored once and a newer one of the same key supersedes
    it. Deleted with the customer. No HNSW index on purpose: recall always filters by customer (a handful of
    rows, read through `ix_customer_memories_customer_id`), and an approximate index scan filtered afterwards
    (pgvector 0.6) could return none of this customer's rows.
    """

    __tablename__ = "customer_memories"
    __table_args__ = (
        UniqueConstraint("customer_id", "kind", "key"),
        Index("ix_customer_memories_customer_updated", "customer_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # A `memory.kinds.MemoryKind` value (product, choice, quote, company, need, stage).
    kind: Mapped[str] = mapped_column(String(32))
    # What makes two facts "the same" within a kind (a SKU, a quote id, or the kind itself for singletons).
    key: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[list[float] | None] = mapped_column(BinaryVector(EMBEDDING_DIM))
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    # Where the fact was learnt; kept when the conversation or message is deleted on its own.
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
