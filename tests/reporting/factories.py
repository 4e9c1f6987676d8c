"""Rows for the read-side tests (admin, API, stats), written with real commits through the ORM models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
    Owner,
    Product,
    Quote,
    SalesStage,
)
from salesbot.models._columns import utcnow

_sequence = count(1)
_SENT = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)


@dataclass
class Chat:
    customer: Customer
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)


async def make_chat(
    session: AsyncSession,
    *,
    phone: str | None = None,
    name: str | None = "Customer",
    channel: Channel = Channel.WAZZUP,
    status: ConversationStatus = ConversationStatus.ACTIVE,
    stage: SalesStage = SalesStage.GREETING,
    owner: Owner = Owner.BOT,
    language: str | None = "en",
    last_message_at: datetime | None = None,
    updated_at: datetime | None = None,
    created_at: datetime | None = None,
    llm_cost_total: Decimal = Decimal(0),
    message_count: int = 0,
) -> Chat:
    number = next(_sequence)
    chat_id = phone or f"7900{number:07d}"
    customer = Customer(channel=channel, chat_id=chat_id, name=name, language=language)
    session.add(customer)
    await session.flush()
    now = utcnow()
    conversation = Conversation(
        customer_id=customer.id,
        channel=channel,
        status=status,
        sales_stage=stage,
        owner=owner,
        language=language,
        last_message_at=last_message_at,
        llm_cost_total=llm_cost_total,
        message_count=message_count,
        created_at=created_at or now,
        updated_at=updated_at or now,
    )
    session.add(conversation)
    await session.flush()
    return Chat(customer=customer, conversation=conversation)


async def add_message(
    session: AsyncSession,
    chat: Chat,
    text: str,
    *,
    author: Author = Author.CUSTOMER,
    at: datetime | None = None,
    status: DeliveryStatus | None = None,
    sent_at: datetime | None = None,
    error: str | None = None,
    part_index: int = 0,
    **turn: Any,
) -> Message:
    direction = Direction.INBOUND if author is Author.CUSTOMER else Direction.OUTBOUND
    created = at or utcnow()
    if direction is Direction.OUTBOUND and status is None:
        status = DeliveryStatus.SENT
    message = Message(
        conversation_id=chat.conversation.id,
        channel=chat.conversation.channel,
        direction=direction,
        author=author,
        text=text,
        delivery_status=status,
        error=error,
        sent_at=sent_at if sent_at is not None else (created + timedelta(seconds=1) if status in _SENT else None),
        idempotency_key=f"test:{next(_sequence)}" if direction is Direction.OUTBOUND else None,
        part_index=part_index,
        created_at=created,
        updated_at=created,
        **turn,
    )
    session.add(message)
    await session.flush()
    chat.messages.append(message)
    return message


async def make_product(session: AsyncSession, sku: str, *, price: str = "10.00", **fields: Any) -> Product:
    values: dict[str, Any] = {"name": f"Product {sku}", "category": "misc", "stock": 5, **fields}
    product = Product(sku=sku, price=Decimal(price), **values)
    session.add(product)
    await session.flush()
    return product


async def make_quote(session: AsyncSession, chat: Chat, *, sku: str = "SKU-1", qty: int = 2) -> Quote:
    unit = Decimal("100.00")
    quote = Quote(
        conversation_id=chat.conversation.id,
        items=[
            {"sku": sku, "name": f"Product {sku}", "qty": qty, "unit_price": str(unit), "line_total": str(unit * qty)}
        ],
        subtotal=unit * qty,
        discount_pct=Decimal("5"),
        discount_amount=unit * qty * Decimal("0.05"),
        total=unit * qty * Decimal("0.95"),
        currency="USD",
    )
    session.add(quote)
    await session.flush()
    return quote
