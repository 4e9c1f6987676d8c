"""Team alerts (handoffs, failed deliveries, big quotes...) and their delivery per channel."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column, updated_at_column


class AlertKind(StrEnum):
    # The customer asked for a person and the turn handed the chat over (one event, one alert).
    PERSON_REQUESTED = "person_requested"
    # A turn ended in a handoff for another reason (budget spent, the agent kept failing, usage limit).
    HANDOFF = "handoff"
    DELIVERY_FAILED = "delivery_failed"
    # The conversation's needs_attention flag went up for a reason no other alert of the same commit covers.
    NEEDS_ATTENTION = "needs_attention"
    QUOTE_ABOVE_THRESHOLD = "quote_above_threshold"
    PAYMENT_RECEIVED = "payment_received"


class AlertChannel(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"
    WEBHOOK = "webhook"


class AlertDeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Alert(Base):
    """One event the team hears about; `event_key` makes a second recording of the same event a no-op."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("event_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[AlertKind] = mapped_column(enum_column(AlertKind, "alert_kind"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    event_key: Mapped[str] = mapped_column(String(200))
    # A short excerpt with phone numbers and e-mail addresses masked (never the whole message).
    excerpt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()

    deliveries: Mapped[list[AlertDelivery]] = relationship(lazy="raise", order_by="AlertDelivery.id")


class AlertDelivery(Base):
    """An alert's delivery through one channel: pending (with its next attempt), sent or failed for good."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel"),
        Index("ix_alert_deliveries_due", "next_attempt_at", postgresql_where=sql_text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[AlertChannel] = mapped_column(enum_column(AlertChannel, "alert_channel"))
    status: Mapped[AlertDeliveryStatus] = mapped_column(
        enum_column(AlertDeliveryStatus, "alert_delivery_status"), default=AlertDeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Recorded (and committed) before each call: an attempt on record without an outcome may have been sent.
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
