from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column, enum_column, updated_at_column
from salesbot.models.enums import Author, Channel, DeliveryStatus, Direction


class Message(Base):
    """A message in a conversation, inbound or outbound; outbound rows are the outbox."""

    __tablename__ = "messages"
    __table_args__ = (
        # At-least-once webhook delivery never becomes a second row (NULLs allowed for our own drafts).
        UniqueConstraint("channel", "provider_message_id"),
        # A retried turn or send never writes a second outbound row.
        UniqueConstraint("idempotency_key"),
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        Index("ix_messages_pending", "delivery_status", postgresql_where=sql_text("direction = 'outbound'")),
        # The turn job and the recovery sweep look for customer messages no turn has consumed yet.
        Index(
            "ix_messages_unprocessed_inbound",
            "conversation_id",
            postgresql_where=sql_text("direction = 'inbound' AND processed_at IS NULL"),
        ),
        # The delivery job walks a conversation's pending outbound rows in order.
        Index(
            "ix_messages_outbox_pending",
            "conversation_id",
            "id",
            postgresql_where=sql_text("direction = 'outbound' AND delivery_status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "channel"))
    direction: Mapped[Direction] = mapped_column(enum_column(Direction, "direction"))
    author: Mapped[Author] = mapped_column(enum_column(Author, "author"))
    text: Mapped[str] = mapped_column(Text, default="")
    # Provider's message type for inbound (text, image, audio, vcard, ...).
    content_type: Mapped[str] = mapped_column(String(32), default="text", server_default="text")
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default=sql_text("'[]'::jsonb"))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    delivery_status: Mapped[DeliveryStatus | None] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(160))
    # Order of the parts of one reply split to the provider's length limit.
    part_index: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    send_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    # Recorded (and committed) right before each provider call: a crash after it means "maybe sent".
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Start of the earliest attempt that may have reached the provider without an answer saying so (a crash, a
    # timeout): the provider's duplicate window runs from here. NULL once an answer settles it.
    uncertain_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Earliest time of the next attempt after a transient failure (backoff).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Inbound: when a turn consumed the message (NULL = still waiting for a turn, recoverable after a crash).
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Inbound: how many turns started on the message (counted and committed before generating); a message that
    # keeps failing its turn gets the handoff message instead of another attempt.
    turn_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    # Outbound replies: the newest customer message the reply answers.
    in_reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # Turn records for bot replies.
    model: Mapped[str | None] = mapped_column(String(200))
    fallback_used: Mapped[bool | None] = mapped_column()
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=sql_text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
