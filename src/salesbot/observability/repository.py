"""SQL for the scrape-time gauges of `/metrics`: what PostgreSQL already knows, counted when Prometheus asks.

Each query is one aggregate over an indexed column or a small table; the outbound count uses the partial index
`ix_messages_pending` (outbound rows by delivery status).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Conversation, Direction, LlmUsage, Message


@dataclass(frozen=True)
class ModelUsage:
    model: str
    requests: int
    tokens_in: int
    tokens_out: int
    cost: Decimal


async def outbound_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Message.delivery_status, func.count())
        .where(Message.direction == Direction.OUTBOUND)
        .group_by(Message.delivery_status)
    )
    return {str(status.value if status is not None else "none"): int(count) for status, count in rows}


async def conversations_by_status_and_owner(session: AsyncSession) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        select(Conversation.status, Conversation.owner, func.count()).group_by(Conversation.status, Conversation.owner)
    )
    return {(status.value, owner.value): int(count) for status, owner, count in rows}


async def llm_usage_by_model(session: AsyncSession) -> list[ModelUsage]:
    """Every generation's usage ever recorded, summed per model (rows without a model: the offline responder)."""
    rows = await session.execute(
        select(
            LlmUsage.model,
            func.sum(LlmUsage.requests),
            func.sum(LlmUsage.tokens_in),
            func.sum(LlmUsage.tokens_out),
            func.sum(LlmUsage.cost),
        ).group_by(LlmUsage.model)
    )
    return [
        ModelUsage(model or "none", int(requests or 0), int(tokens_in or 0), int(tokens_out or 0), Decimal(cost or 0))
        for model, requests, tokens_in, tokens_out, cost in rows
    ]
