from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from salesbot.db import Base
from salesbot.models._columns import created_at_column


class LlmUsage(Base):
    """What one generation of a turn asked the LLMs: every request, including drafts that were never sent.

    Written by the transaction that decides the draft's fate, so a discarded, withdrawn or timed-out draft is
    still counted; the dashboard's LLM cost sums these rows, not the reply messages.
    """

    __tablename__ = "llm_usage"
    __table_args__ = (Index("ix_llm_usage_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    # What became of the generation: sent, discarded (newer messages), withdrawn (takeover, opt-out), timed_out.
    outcome: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(200))
    requests: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    tokens_in: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    tokens_out: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    cost: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0), server_default=sql_text("0"))
    created_at: Mapped[datetime] = created_at_column()
