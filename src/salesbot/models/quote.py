from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column
from salesbot.models.enums import PaymentStatus


class Quote(Base):
    """A quotation built from catalog prices; line items are a snapshot at quoting time."""

    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint("discount_pct >= 0 AND discount_pct <= 100", name="discount_pct_range"),
        CheckConstraint("total >= 0", name="total_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    # [{"sku", "name", "qty", "unit_price", "line_total"}] with prices as decimal strings.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    subtotal: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    discount_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    discount_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = created_at_column()
    # When the customer accepted it (the move from quoting to closing), and its payment link's state (None: no
    # link was asked for, e.g. Stripe is not configured).
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payment_status: Mapped[PaymentStatus | None] = mapped_column(enum_column(PaymentStatus, "payment_status"))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
