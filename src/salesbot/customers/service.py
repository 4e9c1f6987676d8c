"""Erase a customer and everything stored about them: the one service behind the API and the admin action."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.customers import repository
from salesbot.kit.errors import NotFoundError
from salesbot.kit.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ErasedCustomer:
    customer_id: int
    conversations: int
    messages: int
    quotes: int
    memories: int


async def erase_customer(session: AsyncSession, customer_id: int) -> ErasedCustomer:
    """Delete the customer, their conversations, messages, quotes and memory (flushes; the caller commits).

    Raises `NotFoundError` when there is no such customer. A turn or delivery job that runs afterwards finds
    nothing to do (its conversation is gone).
    """
    if await repository.lock_customer(session, customer_id) is None:
        raise NotFoundError(f"customer {customer_id} not found")
    counts = await repository.data_counts(session, customer_id)
    await repository.delete_customer(session, customer_id)
    await session.flush()
    erased = ErasedCustomer(customer_id, *counts)
    log.info("customers.erased", **vars(erased))
    return erased
