"""SQL for the read side: filtered, sorted and paginated conversations, transcripts, quotes and products."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, defer, selectinload

from salesbot.models import (
    Conversation,
    ConversationStatus,
    Customer,
    Message,
    Owner,
    Product,
    Quote,
    SalesStage,
    User,
)

# `ConversationFilters.assignee` value that selects conversations nobody is assigned to.
UNASSIGNED = "none"

# Any SELECT (of conversations, of a count, of conversation + customer rows): the helpers keep its type.
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


def escape_like(value: str) -> str:
    """Make user input literal inside a LIKE pattern (`%` and `_` are wildcards)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def chat_id_digits() -> ColumnElement[str]:
    """The digits of the customer's chat address, so `+7 (901) 123` and `whatsapp:+7901123` both match `7901`."""
    return func.regexp_replace(Customer.chat_id, r"\D", "", "g")


@dataclass(frozen=True)
class ConversationFilters:
    status: ConversationStatus | None = None
    stage: SalesStage | None = None
    owner: Owner | None = None
    language: str | None = None
    # Digits only (callers strip spaces, dashes and the leading +).
    phone_digits: str | None = None
    # Customer name or phone, for the admin's search box.
    search: str | None = None
    updated_since: datetime | None = None
    updated_until: datetime | None = None
    # A username, or UNASSIGNED.
    assignee: str | None = None


class ConversationSort(StrEnum):
    """Sort keys of the conversation list; a leading `-` sorts descending (newest activity first is the default)."""

    LAST_MESSAGE_AT_DESC = "-last_message_at"
    LAST_MESSAGE_AT = "last_message_at"
    UPDATED_AT_DESC = "-updated_at"
    UPDATED_AT = "updated_at"
    CREATED_AT_DESC = "-created_at"
    CREATED_AT = "created_at"
    MESSAGE_COUNT_DESC = "-message_count"
    MESSAGE_COUNT = "message_count"
    LLM_COST_DESC = "-llm_cost_total"
    LLM_COST = "llm_cost_total"
    ID_DESC = "-id"
    ID = "id"


_SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "last_message_at": Conversation.last_message_at,
    "updated_at": Conversation.updated_at,
    "created_at": Conversation.created_at,
    "message_count": Conversation.message_count,
    "llm_cost_total": Conversation.llm_cost_total,
    "id": Conversation.id,
}


def apply_conversation_filters(stmt: AnySelect, filters: ConversationFilters) -> AnySelect:
    """Add the filters' WHERE clauses; the statement must already select from conversations JOIN customers."""
    conditions: list[ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Conversation.status == filters.status)
    if filters.stage is not None:
        conditions.append(Conversation.sales_stage == filters.stage)
    if filters.owner is not None:
        conditions.append(Conversation.owner == filters.owner)
    if filters.language is not None:
        conditions.append(func.lower(Conversation.language) == filters.language.lower())
    if filters.phone_digits:
        conditions.append(chat_id_digits().like(f"%{escape_like(filters.phone_digits)}%", escape="\\"))
    if filters.search:
        term = filters.search.strip()
        matches: list[ColumnElement[bool]] = [Customer.name.ilike(f"%{escape_like(term)}%", escape="\\")]
        term_digits = "".join(ch for ch in term if "0" <= ch <= "9")
        if term_digits:
            matches.append(chat_id_digits().like(f"%{escape_like(term_digits)}%", escape="\\"))
        conditions.append(or_(*matches))
    if filters.updated_since is not None:
        conditions.append(Conversation.updated_at >= filters.updated_since)
    if filters.updated_until is not None:
        conditions.append(Conversation.updated_at <= filters.updated_until)
    if filters.assignee == UNASSIGNED:
        conditions.append(Conversation.assignee_id.is_(None))
    elif filters.assignee is not None:
        assignee_id = select(User.id).where(User.username == filters.assignee).scalar_subquery()
        conditions.append(Conversation.assignee_id == assignee_id)
    return stmt.where(*conditions)


def apply_conversation_sort(stmt: AnySelect, sort: ConversationSort) -> AnySelect:
    descending = sort.value.startswith("-")
    column = _SORT_COLUMNS[sort.value.lstrip("-")]
    ordered = column.desc() if descending else column.asc()
    # Chats without messages yet sort after those with activity in both directions; id breaks ties stably.
    return stmt.order_by(ordered.nulls_last(), Conversation.id.desc() if descending else Conversation.id.asc())


def _conversations_query(filters: ConversationFilters) -> Select[Conversation]:
    stmt = select(Conversation).join(Customer, Customer.id == Conversation.customer_id)
    return apply_conversation_filters(stmt, filters)


async def count_conversations(session: AsyncSession, filters: ConversationFilters) -> int:
    stmt = apply_conversation_filters(
        select(func.count(Conversation.id)).join(Customer, Customer.id == Conversation.customer_id),
        filters,
    )
    return int((await session.execute(stmt)).scalar_one())


async def list_conversations(
    session: AsyncSession,
    filters: ConversationFilters,
    *,
    sort: ConversationSort = ConversationSort.LAST_MESSAGE_AT_DESC,
    offset: int = 0,
    limit: int = 50,
) -> Sequence[Conversation]:
    stmt = apply_conversation_sort(_conversations_query(filters), sort).options(
        selectinload(Conversation.customer), selectinload(Conversation.assignee)
    )
    result = await session.execute(stmt.offset(offset).limit(limit))
    return result.scalars().all()


async def stream_conversations(
    session: AsyncSession,
    filters: ConversationFilters,
    *,
    sort: ConversationSort = ConversationSort.LAST_MESSAGE_AT_DESC,
    batch_size: int = 500,
) -> AsyncIterator[tuple[Conversation, Customer]]:
    """Every matching conversation with its customer, fetched in batches through a server-side cursor."""
    stmt = apply_conversation_sort(
        select(Conversation, Customer).join(Customer, Customer.id == Conversation.customer_id),
        sort,
    )
    stmt = apply_conversation_filters(stmt, filters)
    result = await session.stream(stmt.execution_options(yield_per=batch_size))
    async for conversation, customer in result:
        yield conversation, customer


async def get_conversation(session: AsyncSession, conversation_id: int) -> Conversation | None:
    stmt = (
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .options(selectinload(Conversation.customer), selectinload(Conversation.assignee))
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_messages(session: AsyncSession, conversation_id: int) -> Sequence[Message]:
    """The transcript in the order the customer saw it (parts of one split reply stay in order)."""
    stmt = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at, Message.part_index, Message.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def list_quotes(session: AsyncSession, conversation_id: int) -> Sequence[Quote]:
    stmt = select(Quote).where(Quote.conversation_id == conversation_id).order_by(Quote.created_at, Quote.id)
    return (await session.execute(stmt)).scalars().all()


async def get_quote(session: AsyncSession, quote_id: int) -> Quote | None:
    return await session.get(Quote, quote_id)


@dataclass(frozen=True)
class ProductFilters:
    # Case-insensitive substring of SKU, name or category.
    search: str | None = None
    sku: str | None = None
    category: str | None = None
    active: bool | None = None


def _products_query(filters: ProductFilters) -> Select[Product]:
    conditions: list[ColumnElement[bool]] = []
    if filters.search:
        pattern = f"%{escape_like(filters.search.strip())}%"
        conditions.append(
            or_(
                Product.sku.ilike(pattern, escape="\\"),
                Product.name.ilike(pattern, escape="\\"),
                Product.category.ilike(pattern, escape="\\"),
            )
        )
    if filters.sku is not None:
        conditions.append(Product.sku == filters.sku)
    if filters.category is not None:
        conditions.append(func.lower(Product.category) == filters.category.lower())
    if filters.active is not None:
        conditions.append(Product.active.is_(filters.active))
    # The vector and the tsvector are search machinery: never loaded for listings (and never rendered).
    return (
        select(Product)
        .where(*conditions)
        .options(defer(Product.embedding, raiseload=True), defer(Product.search_vector, raiseload=True))
    )


async def count_products(session: AsyncSession, filters: ProductFilters) -> int:
    subquery = _products_query(filters).subquery()
    return int((await session.execute(select(func.count()).select_from(subquery))).scalar_one())


async def list_products(
    session: AsyncSession, filters: ProductFilters, *, offset: int = 0, limit: int = 50
) -> Sequence[Product]:
    stmt = _products_query(filters).order_by(Product.sku, Product.id).offset(offset).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def get_product(session: AsyncSession, product_id: int, *, for_update: bool = False) -> Product | None:
    stmt = _products_query(ProductFilters()).where(Product.id == product_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def product_id_by_sku(session: AsyncSession, sku: str) -> int | None:
    return (await session.execute(select(Product.id).where(Product.sku == sku))).scalar_one_or_none()


async def other_active_conversation(session: AsyncSession, customer_id: int, conversation_id: int) -> int | None:
    """The customer's active conversation other than `conversation_id` (at most one can exist)."""
    stmt = select(Conversation.id).where(
        Conversation.customer_id == customer_id,
        Conversation.status == ConversationStatus.ACTIVE,
        Conversation.id != conversation_id,
    )
    return (await session.execute(stmt)).scalar_one_or_none()
