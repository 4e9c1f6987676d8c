from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column, updated_at_column
from salesbot.models.enums import PaymentStatus


class PaymentLink(Base):
    """One Stripe Checkout Session for one acceptance of a quote (a quote accepted again gets a new link).

    `idempotency_key` is sent as Stripe's `Idempotency-Key`: a retried creation returns the same session."""

    __tablename__ = "payment_links"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    status: Mapped[PaymentStatus] = mapped_column(enum_column(PaymentStatus, "payment_status"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    # What the session charges, in the currency's minor units (checked against the paid event).
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    url: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
