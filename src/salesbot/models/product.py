from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Computed, Index, Integer, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.kit.pgvector_binary import BinaryVector
from salesbot.knowledge.embeddings import embedding_dimension
from salesbot.models._columns import created_at_column, updated_at_column
from salesbot.settings import get_settings

# The configured model's dimension (EMBEDDING_MODEL; 512 for the default multilingual USE, 1024 for BGE-M3), so
# the declared column type is what `salesbot migrate` / `salesbot reindex` gave the database and `alembic check`
# sees no drift whichever model is configured.
EMBEDDING_DIM = embedding_dimension(get_settings().embedding)


class Product(Base):
    """A catalog item; prices and stock quoted to customers come only from here."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        Index(
            "ix_products_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            # A denser graph than pgvector's defaults: recall@10 >= 0.95 at 100,000 products (migrations c4a1e8f2d6b7,
            # beb0723be701).
            postgresql_with={"m": 32, "ef_construction": 400},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_products_search_vector", "search_vector", postgresql_using="gin"),
        Index("ix_products_category", "category"),
        # Each turn's catalog fingerprint reads max(updated_at) (agent/repository.skus_with_digits).
        Index("ix_products_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    category: Mapped[str] = mapped_column(String(120), default="", server_default="")
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    stock: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # A photo of the product (http or https, taken as given), sent after a reply that names the product.
    image_url: Mapped[str | None] = mapped_column(String(2000))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    embedding: Mapped[list[float] | None] = mapped_column(BinaryVector(EMBEDDING_DIM))
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple'::regconfig, coalesce(sku, '') || ' ' || coalesce(name, '') || ' ' || "
            "coalesce(category, '') || ' ' || coalesce(description, ''))",
            persisted=True,
        ),
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
