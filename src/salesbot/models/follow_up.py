"""Automated follow-ups (playbook `follow_ups` rules): scheduled, then sent through the outbox, or cancelled."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column, updated_at_column


class FollowUpStatus(StrEnum):
    SCHEDULED = "scheduled"
    # Written to the outbox (the message row carries its delivery state).
    SENT = "sent"
    # The customer wrote, a manager took over, the customer opted out, the chat was closed.
    CANCELLED = "cancelled"
    # Due, but not sendable: outside the 24-hour window without a template, daily limit reached.
    SKIPPED = "skipped"


class FollowUp(Base):
    """One follow-up of one rule for one trigger (a quote, a stall) of one conversation: `key` is unique, so a
    scheduler that runs twice schedules and sends it once."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_follow_ups_due", "due_at", postgresql_where=sql_text("status = 'scheduled'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    # "{rule}:{conversation}:{trigger}", e.g. "quote_reminder:12:quote:40".
    key: Mapped[str] = mapped_column(String(200))
    status: Mapped[FollowUpStatus] = mapped_column(
        enum_column(FollowUpStatus, "follow_up_status"), default=FollowUpStatus.SCHEDULED
    )
    # When the trigger happened (the quote, the stall's last message): any customer message after it cancels.
    trigger_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Why it was cancelled or skipped; "template" when it went out as the closed-window template.
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
