from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column


class PaymentEvent(Base):
    """A verified Stripe webhook event, kept once per Stripe event id: Stripe retries deliveries, and a retried
    event must not mark a quote paid or thank the customer twice."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_link_id: Mapped[int | None] = mapped_column(ForeignKey("payment_links.id", ondelete="SET NULL"), index=True)
    # What salesbot did with it: paid, expired, failed, not_paid_yet, unknown_session, amount_mismatch, ignored.
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = created_at_column()
