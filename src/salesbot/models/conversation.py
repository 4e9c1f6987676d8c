from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column, updated_at_column
from salesbot.models.customer import Customer
from salesbot.models.enums import Channel, ConversationStatus, Owner, SalesStage
from salesbot.models.user import User


class Conversation(Base):
    """One sales conversation with a customer; at most one is active per customer."""

    __tablename__ = "conversations"
    __table_args__ = (
        # One active conversation per customer: concurrent turns cannot open two.
        Index(
            "uq_conversations_active_customer",
            "customer_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_conversations_last_message_at", "last_message_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "channel"))
    status: Mapped[ConversationStatus] = mapped_column(
        enum_column(ConversationStatus, "conversation_status"), default=ConversationStatus.ACTIVE
    )
    sales_stage: Mapped[SalesStage] = mapped_column(enum_column(SalesStage, "sales_stage"), default=SalesStage.GREETING)
    owner: Mapped[Owner] = mapped_column(enum_column(Owner, "owner"), default=Owner.BOT)
    owner_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The manager responsible for the chat (set on assignment, and when a manager takes it over or replies).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Set when the bot could not deliver (window closed, permanent failure) and a manager should look.
    needs_attention: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    language: Mapped[str | None] = mapped_column(String(8))
    summary: Mapped[str | None] = mapped_column(Text)
    # Placeholder -> real value for PII masked before the model sees text ({"[PHONE_1]": "+7 901 ..."}).
    pii_map: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    # Sales facts the agent collects (selected SKUs, budget, needs); read by stage exit criteria.
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    turn_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    message_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    tokens_in_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    tokens_out_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    llm_cost_total: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0), server_default=text("0"))
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    customer: Mapped[Customer] = relationship(lazy="raise")
    assignee: Mapped[User | None] = relationship(lazy="raise")
