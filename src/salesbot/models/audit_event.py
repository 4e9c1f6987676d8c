from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column


class AuditEvent(Base):
    """Who did what: one row per manager action (admin, REST API or CLI), never updated."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_conversation_at", "conversation_id", "at"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = created_at_column()
    # The username as it was then (kept when the account is deleted), or a system actor such as "api".
    actor: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    # Kept (as NULL) when the customer's data is erased: the record of the erasure itself stays.
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
