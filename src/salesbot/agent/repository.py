"""SQL the agent needs (history, returning-customer profile, catalog prices for quotes). Only reads and flushes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.deps import CustomerProfile, PastQuote
from salesbot.models import Conversation, Customer, DeliveryStatus, Direction, Message, Product, Quote
from salesbot.sales.repository import active_products

__all__ = ["active_products", "customer_profile", "image_urls", "messages_after", "quote_count", "skus_with_digits"]


async def messages_after(
    session: AsyncSession, conversation_id: int, *, after_id: int, before_id: int | None
) -> list[Message]:
    """Messages of the conversation with after_id < id < before_id, oldest first (failed/cancelled sends skipped)."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.id > after_id)
        .where(
            (Message.direction == Direction.INBOUND)
            | Message.delivery_status.is_(None)
            | Message.delivery_status.not_in([DeliveryStatus.FAILED, DeliveryStatus.CANCELLED])
        )
        .order_by(Message.id)
    )
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return list((await session.scalars(query)).all())


async def quote_count(session: AsyncSession, conversation_id: int) -> int:
    return int((await session.scalar(select(func.count()).where(Quote.conversation_id == conversation_id))) or 0)


async def customer_profile(session: AsyncSession, customer: Customer, conversation: Conversation) -> CustomerProfile:
    """Earlier conversations and quotes of this customer (recognised by channel + chat id)."""
    previous = await session.scalar(
        select(Conversation)
        .where(Conversation.customer_id == customer.id, Conversation.id != conversation.id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    quotes = (
        await session.scalars(
            select(Quote)
            .join(Conversation, Conversation.id == Quote.conversation_id)
            .where(Conversation.customer_id == customer.id)
            .order_by(Quote.id.desc())
            .limit(3)
        )
    ).all()
    past = [
        PastQuote(
            id=quote.id,
            created_at=quote.created_at,
            total=quote.total,
            currency=quote.currency,
            items=", ".join(f"{item['sku']} x {item['qty']}" for item in quote.items),
        )
        for quote in quotes
    ]
    return CustomerProfile(
        returning=previous is not None or bool(past),
        previous_stage=previous.sales_stage.value if previous is not None else None,
        past_quotes=past,
    )


# (database URL, min_digits) -> (the catalog's fingerprint, its SKUs with that many digits).
_skus: dict[tuple[str, int], tuple[tuple[Any, ...], tuple[str, ...]]] = {}


async def skus_with_digits(session: AsyncSession, *, min_digits: int) -> tuple[str, ...]:
    """Catalog SKUs holding at least `min_digits` digits: the ones a phone detector could mistake for a number.

    Every turn asks, and the catalog rarely changes: the SKUs are remembered per process and read again only when
    the catalog's fingerprint differs: its highest id, which every insert moves whatever the writer's clock says,
    and its latest `updated_at`, which every edit through SQLAlchemy moves. Both are one end of an index (a row
    count was a sequential scan: 31 ms per turn at 100,000 products). Products are deactivated, not deleted; a row
    deleted by hand leaves its SKU in the list until the next change, which only spares that SKU from masking. The
    fingerprint is read first, so remembered SKUs are never older than it."""
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), min_digits)
    fingerprint = tuple((await session.execute(select(func.max(Product.id), func.max(Product.updated_at)))).one())
    cached = _skus.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    digits = func.length(func.regexp_replace(Product.sku, r"\D", "", "g"))
    skus = tuple((await session.scalars(select(Product.sku).where(digits >= min_digits))).all())
    _skus[key] = (fingerprint, skus)
    return skus


async def image_urls(session: AsyncSession, skus: Sequence[str]) -> dict[str, str]:
    """SKU -> photo URL of these active products that have one."""
    if not skus:
        return {}
    rows = await session.execute(
        select(Product.sku, Product.image_url).where(
            Product.sku.in_(skus), Product.active.is_(True), Product.image_url.is_not(None)
        )
    )
    return {sku: url for sku, url in rows if url}
