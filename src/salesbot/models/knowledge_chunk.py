from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Computed, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.kit.pgvector_binary import BinaryVector
from salesbot.models._columns import created_at_column, updated_at_column
from salesbot.models.product import EMBEDDING_DIM


class KnowledgeChunk(Base):
    """A passage of the business's knowledge base (delivery, payment, warranty...)."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        UniqueConstraint("source", "chunk_index"),
        Index(
            "ix_knowledge_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_knowledge_chunks_search_vector", "search_vector", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    chunk_index: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(300), default="", server_default="")
    content: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    # Deactivated passages stay for the record (and re-activation) but are never retrieved for customers.
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    embedding: Mapped[list[float] | None] = mapped_column(BinaryVector(EMBEDDING_DIM))
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple'::regconfig, coalesce(title, '') || ' ' || coalesce(content, ''))",
            persisted=True,
        ),
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
