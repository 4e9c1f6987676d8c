"""What the REST API does, between the thin router and the repositories/services of the domains (flush only)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.api.dependencies import PageParams
from salesbot.api.schemas import (
    ConversationDetail,
    ConversationOut,
    ConversationPatch,
    EventOut,
    MessageOut,
    Page,
    ProductCreate,
    ProductOut,
    ProductPatch,
    QuoteOut,
)
from salesbot.audit import repository as audit
from salesbot.audit.actor import Actor
from salesbot.conversations import manager_actions
from salesbot.kit.errors import ConflictError, NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.kit.phones import phone_from_chat_id
from salesbot.knowledge.editing import embedding_update, product_text
from salesbot.knowledge.embeddings import Embedder
from salesbot.knowledge.repository import lock_catalog
from salesbot.models import Conversation, Customer, Product
from salesbot.outbox.service import schedule_delivery
from salesbot.reporting import repository
from salesbot.reporting.repository import ConversationFilters, ConversationSort, ProductFilters
from salesbot.settings import Settings

log = get_logger(__name__)


def _pages(total: int, page_size: int) -> int:
    return math.ceil(total / page_size) if total else 0


async def conversations_page(
    session: AsyncSession, filters: ConversationFilters, sort: ConversationSort, paging: PageParams
) -> Page[ConversationOut]:
    total = await repository.count_conversations(session, filters)
    rows: Sequence[Conversation] = []
    if paging.offset < total:
        rows = await repository.list_conversations(
            session, filters, sort=sort, offset=paging.offset, limit=paging.page_size
        )
    return Page[ConversationOut](
        items=[ConversationOut.of(row, row.customer) for row in rows],
        total=total,
        page=paging.page,
        page_size=paging.page_size,
        pages=_pages(total, paging.page_size),
    )


async def get_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await repository.get_conversation(session, conversation_id)
    if conversation is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    return conversation


async def conversation_detail(session: AsyncSession, conversation_id: int) -> ConversationDetail:
    conversation = await get_conversation(session, conversation_id)
    messages = await repository.list_messages(session, conversation_id)
    quotes = await repository.list_quotes(session, conversation_id)
    events = await audit.conversation_events(session, conversation_id)
    summary = ConversationOut.of(conversation, conversation.customer)
    return ConversationDetail(
        **summary.model_dump(),
        summary=conversation.summary,
        messages=[MessageOut.of(message) for message in messages],
        quotes=[QuoteOut.of(quote) for quote in quotes],
        events=[EventOut.model_validate(event) for event in events],
    )


EXPORT_COLUMNS = (
    "id",
    "customer_name",
    "phone",
    "channel",
    "status",
    "stage",
    "owner",
    "language",
    "message_count",
    "llm_cost_total",
    "last_message_at",
    "created_at",
    "updated_at",
)
# A cell starting with one of these is a formula to spreadsheet programs (CSV injection through a customer name).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(value: str | None) -> str:
    if not value:
        return ""
    return f"'{value}" if value.startswith(_FORMULA_PREFIXES) else value


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _export_row(conversation: Conversation, customer: Customer) -> list[str]:
    return [
        str(conversation.id),
        _spreadsheet_safe(customer.name),
        phone_from_chat_id(customer.chat_id),
        conversation.channel.value,
        conversation.status.value,
        conversation.sales_stage.value,
        conversation.owner.value,
        conversation.language or "",
        str(conversation.message_count),
        str(conversation.llm_cost_total),
        _iso(conversation.last_message_at),
        _iso(conversation.created_at),
        _iso(conversation.updated_at),
    ]


async def export_conversations_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    filters: ConversationFilters,
    sort: ConversationSort,
    *,
    rows_per_chunk: int = 200,
) -> AsyncIterator[str]:
    """CSV text in chunks, read through a server-side cursor: memory stays flat however many rows match.

    The generator owns its session (the response streams after the request's unit of work has ended).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    pending = 0
    async with sessionmaker() as session:
        async for conversation, customer in repository.stream_conversations(session, filters, sort=sort):
            writer.writerow(_export_row(conversation, customer))
            pending += 1
            if pending >= rows_per_chunk:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                pending = 0
    yield buffer.getvalue()


async def get_quote(session: AsyncSession, quote_id: int) -> QuoteOut:
    quote = await repository.get_quote(session, quote_id)
    if quote is None:
        raise NotFoundError(f"quote {quote_id} not found")
    return QuoteOut.of(quote)


async def products_page(session: AsyncSession, filters: ProductFilters, paging: PageParams) -> Page[ProductOut]:
    total = await repository.count_products(session, filters)
    rows = (
        await repository.list_products(session, filters, offset=paging.offset, limit=paging.page_size)
        if paging.offset < total
        else []
    )
    return Page[ProductOut](
        items=[ProductOut.of(row) for row in rows],
        total=total,
        page=paging.page,
        page_size=paging.page_size,
        pages=_pages(total, paging.page_size),
    )


async def get_product(session: AsyncSession, product_id: int) -> ProductOut:
    product = await repository.get_product(session, product_id)
    if product is None:
        raise NotFoundError(f"product {product_id} not found")
    return ProductOut.of(product)


# --- writes -------------------------------------------------------------------------------------------------------


async def patch_conversation(
    session: AsyncSession, settings: Settings, conversation_id: int, patch: ConversationPatch, actor: Actor
) -> ConversationOut:
    """Apply a manager's changes through the conversations' manager actions (validated first, each audited)."""
    conversation = await get_conversation(session, conversation_id)
    given = patch.model_dump(include=patch.model_fields_set)
    await manager_actions.update(session, settings, conversation_id, manager_actions.Changes(**given), actor)
    log.info("api.conversation_patched", conversation=conversation_id, fields=sorted(given))
    return ConversationOut.of(conversation, conversation.customer)


async def send_manager_message(
    session: AsyncSession, settings: Settings, conversation_id: int, text: str, actor: Actor
) -> list[MessageOut]:
    """Queue the text through the outbox (the manager becomes the owner); deliver after the commit."""
    await get_conversation(session, conversation_id)
    rows = await manager_actions.reply(session, settings, conversation_id, text, actor)
    return [MessageOut.of(row) for row in rows]


async def create_product(
    session: AsyncSession, embedder: Embedder, body: ProductCreate, *, default_currency: str, actor: Actor
) -> ProductOut:
    await lock_catalog(session)
    if await repository.product_id_by_sku(session, body.sku) is not None:
        raise ConflictError(f"a product with SKU {body.sku!r} already exists")
    values = body.model_dump()
    values["currency"] = values["currency"] or default_currency
    update = await embedding_update(embedder, product_text(values), current_hash=None, current_model=None)
    product = Product(**values, **(update.as_values() if update else {}))
    session.add(product)
    await session.flush()
    await audit.record(session, actor, "create_product", details={"product": product.id, "sku": product.sku})
    log.info("api.product_created", sku=product.sku)
    return await get_product(session, product.id)


async def update_product(
    session: AsyncSession, embedder: Embedder, product_id: int, patch: ProductPatch, actor: Actor
) -> ProductOut:
    await lock_catalog(session)
    product = await repository.get_product(session, product_id, for_update=True)
    if product is None:
        raise NotFoundError(f"product {product_id} not found")
    changes = patch.model_dump(exclude_unset=True)
    if "sku" in changes and changes["sku"] != product.sku:
        other = await repository.product_id_by_sku(session, changes["sku"])
        if other is not None:
            raise ConflictError(f"a product with SKU {changes['sku']!r} already exists")
    for name, value in changes.items():
        setattr(product, name, value)
    update = await embedding_update(
        embedder,
        product_text({name: getattr(product, name) for name in PRODUCT_TEXT_FIELDS}),
        current_hash=product.content_hash,
        current_model=product.embedding_model,
    )
    if update is not None:
        for name, value in update.as_values().items():
            setattr(product, name, value)
    await session.flush()
    await audit.record(
        session, actor, "edit_product", details={"product": product.id, "sku": product.sku, "fields": sorted(changes)}
    )
    log.info("api.product_updated", sku=product.sku, fields=sorted(changes), reembedded=update is not None)
    return await get_product(session, product_id)


PRODUCT_TEXT_FIELDS = ("sku", "name", "category", "description", "attributes")


async def schedule_delivery_after_commit(redis: ArqRedis, conversation_id: int) -> None:
    """Enqueue delivery of committed manager messages; if Redis is down, the outbox's recovery sweep sends them."""
    try:
        await schedule_delivery(redis, conversation_id)
    except RedisError:
        log.exception("api.delivery_not_scheduled", conversation=conversation_id)
