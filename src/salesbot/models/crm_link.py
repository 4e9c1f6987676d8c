from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column, updated_at_column
from salesbot.models.enums import CrmObject, CrmSyncState


class CrmLink(Base):
    """A CRM record that mirrors one of ours: the customer's contact, or a conversation's deal.

    `external_id` is the CRM's id once created, so every later sync updates that record instead of creating
    another; `state`, `attempts`, `last_error` and `next_attempt_at` drive the retrying job and the admin."""

    __tablename__ = "crm_links"
    __table_args__ = (UniqueConstraint("provider", "object_type", "customer_id", "conversation_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    object_type: Mapped[CrmObject] = mapped_column(enum_column(CrmObject, "crm_object"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # 0 for a contact (one per customer); the conversation for a deal. Not a foreign key so that the unique
    # constraint can cover contacts (NULLs are distinct in PostgreSQL 16 unique constraints).
    conversation_id: Mapped[int] = mapped_column(BigInteger, index=True)
    # The quote whose amount and products the deal carries (the conversation's newest).
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id", ondelete="SET NULL"))
    external_id: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[CrmSyncState] = mapped_column(enum_column(CrmSyncState, "crm_sync_state"), index=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
