"""SQL for erasing a customer. The foreign keys cascade (models/): customer -> conversations -> messages and
quotes, customer -> memories; the counts are taken first for the caller's record."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Conversation, Customer, CustomerMemory, Message, Quote


async def lock_customer(session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update())


async def data_counts(session: AsyncSession, customer_id: int) -> tuple[int, int, int, int]:
    """(conversations, messages, quotes, memories) of the customer."""
    conversations = select(Conversation.id).where(Conversation.customer_id == customer_id).scalar_subquery()
    counts = await session.execute(
        select(
            select(func.count()).where(Conversation.customer_id == customer_id).scalar_subquery(),
            select(func.count()).where(Message.conversation_id.in_(conversations)).scalar_subquery(),
            select(func.count()).where(Quote.conversation_id.in_(conversations)).scalar_subquery(),
            select(func.count()).where(CustomerMemory.customer_id == customer_id).scalar_subquery(),
        )
    )
    row = counts.one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def delete_customer(session: AsyncSession, customer_id: int) -> None:
    await session.execute(delete(Customer).where(Customer.id == customer_id))
