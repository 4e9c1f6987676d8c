"""SQL of the customer memory. Every query is bounded to one customer: there is no way to read across customers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.embedders.base import Vector
from salesbot.models import CustomerMemory, Product


@dataclass(frozen=True)
class StoredFact:
    kind: str
    key: str
    text: str
    embedding_model: str | None


@dataclass(frozen=True)
class Candidate:
    kind: str
    text: str
    conversation_id: int | None
    updated_at: datetime
    embedding: list[float]
    distance: float


async def stored_facts(session: AsyncSession, customer_id: int) -> dict[tuple[str, str], StoredFact]:
    rows = await session.execute(
        select(CustomerMemory.kind, CustomerMemory.key, CustomerMemory.text, CustomerMemory.embedding_model).where(
            CustomerMemory.customer_id == customer_id
        )
    )
    return {(row.kind, row.key): StoredFact(row.kind, row.key, row.text, row.embedding_model) for row in rows}


async def upsert_facts(session: AsyncSession, customer_id: int, values: Sequence[dict[str, Any]]) -> None:
    """Insert or supersede facts by (customer, kind, key); each value has kind, key, text, embedding,
    embedding_model, conversation_id, message_id, updated_at."""
    if not values:
        return
    # Rows as parameters (an executemany that SQLAlchemy sends as one multi-row INSERT), not `.values([...])`:
    # a statement with its rows inside has no cache key and was compiled again on every turn.
    statement = insert(CustomerMemory)
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CustomerMemory.customer_id, CustomerMemory.kind, CustomerMemory.key],
            set_={
                "text": excluded.text,
                "embedding": excluded.embedding,
                "embedding_model": excluded.embedding_model,
                "conversation_id": excluded.conversation_id,
                "message_id": excluded.message_id,
                "updated_at": excluded.updated_at,
            },
        ),
        [{**value, "customer_id": customer_id, "created_at": value["updated_at"]} for value in values],
    )


async def touch_facts(
    session: AsyncSession,
    customer_id: int,
    seen: Sequence[tuple[str, str, datetime]],
    *,
    conversation_id: int | None,
    message_id: int | None,
) -> None:
    """Mark unchanged facts (kind, key, when) as seen again without re-embedding them."""
    for kind, key, now in seen:
        await session.execute(
            update(CustomerMemory)
            .where(CustomerMemory.customer_id == customer_id, CustomerMemory.kind == kind, CustomerMemory.key == key)
            .values(updated_at=now, conversation_id=conversation_id, message_id=message_id)
        )


async def prune(session: AsyncSession, customer_id: int, *, keep: int) -> None:
    """Keep the customer's `keep` newest facts."""
    newest = (
        select(CustomerMemory.id)
        .where(CustomerMemory.customer_id == customer_id)
        .order_by(CustomerMemory.updated_at.desc(), CustomerMemory.id.desc())
        .limit(keep)
    )
    await session.execute(
        delete(CustomerMemory).where(CustomerMemory.customer_id == customer_id, CustomerMemory.id.not_in(newest))
    )


async def has_facts(session: AsyncSession, customer_id: int, *, exclude_conversation_id: int | None = None) -> bool:
    query = select(CustomerMemory.id).where(CustomerMemory.customer_id == customer_id)
    if exclude_conversation_id is not None:
        query = query.where(
            CustomerMemory.conversation_id.is_(None) | (CustomerMemory.conversation_id != exclude_conversation_id)
        )
    return (await session.scalar(query.limit(1))) is not None


async def nearest(
    session: AsyncSession,
    customer_id: int,
    query: Vector,
    *,
    embedding_model: str,
    limit: int,
    exclude_conversation_id: int | None = None,
) -> list[Candidate]:
    """The customer's facts closest to `query` (cosine), made by `embedding_model`, best first.

    The customer's rows are selected first (a MATERIALIZED CTE over the customer_id index) and ordered by an
    exact distance, so no approximate index scan can drop rows of this customer.
    """
    mine = select(
        CustomerMemory.kind,
        CustomerMemory.text,
        CustomerMemory.conversation_id,
        CustomerMemory.updated_at,
        CustomerMemory.embedding,
    ).where(
        CustomerMemory.customer_id == customer_id,
        CustomerMemory.embedding.is_not(None),
        CustomerMemory.embedding_model == embedding_model,
    )
    if exclude_conversation_id is not None:
        mine = mine.where(
            CustomerMemory.conversation_id.is_(None) | (CustomerMemory.conversation_id != exclude_conversation_id)
        )
    cte = mine.cte("mine").prefix_with("MATERIALIZED")
    distance = cte.c.embedding.cosine_distance(query).label("distance")
    rows = await session.execute(
        select(cte.c.kind, cte.c.text, cte.c.conversation_id, cte.c.updated_at, cte.c.embedding, distance)
        .order_by(distance, cte.c.updated_at.desc())
        .limit(limit)
    )
    return [
        Candidate(row.kind, row.text, row.conversation_id, row.updated_at, list(row.embedding), float(row.distance))
        for row in rows
    ]


async def latest(
    session: AsyncSession, customer_id: int, *, kinds: Sequence[str], limit: int = 1
) -> list[CustomerMemory]:
    """The customer's newest facts of these kinds."""
    return list(
        (
            await session.scalars(
                select(CustomerMemory)
                .where(CustomerMemory.customer_id == customer_id, CustomerMemory.kind.in_(list(kinds)))
                .order_by(CustomerMemory.updated_at.desc(), CustomerMemory.id.desc())
                .limit(limit)
            )
        ).all()
    )


async def last_active_product_name(
    session: AsyncSession, customer_id: int, *, kinds: Sequence[str], exclude_conversation_id: int | None
) -> str | None:
    """Name of the active product behind the customer's newest product fact (the fact's key is its SKU)."""
    query = (
        select(Product.name)
        .join(CustomerMemory, func.upper(Product.sku) == CustomerMemory.key)
        .where(
            CustomerMemory.customer_id == customer_id,
            CustomerMemory.kind.in_(list(kinds)),
            Product.active.is_(True),
        )
        .order_by(CustomerMemory.updated_at.desc(), CustomerMemory.id.desc())
        .limit(1)
    )
    if exclude_conversation_id is not None:
        query = query.where(
            CustomerMemory.conversation_id.is_(None) | (CustomerMemory.conversation_id != exclude_conversation_id)
        )
    return await session.scalar(query)


async def any_fact(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().select_from(CustomerMemory))))


async def texts_to_embed(session: AsyncSession, *, embedding_model: str | None) -> list[tuple[int, str]]:
    """(id, text) of the facts without a vector of `embedding_model` (of every fact when it is None)."""
    query = select(CustomerMemory.id, CustomerMemory.text).order_by(CustomerMemory.id)
    if embedding_model is not None:
        query = query.where(
            CustomerMemory.embedding.is_(None)
            | CustomerMemory.embedding_model.is_(None)
            | (CustomerMemory.embedding_model != embedding_model)
        )
    return [(row.id, row.text) for row in await session.execute(query)]
