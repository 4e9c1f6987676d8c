"""A customer with something in every table erasure must clear, and a neighbour that must survive it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.knowledge.embeddings import get_embedder
from salesbot.memory.service import remember
from salesbot.memory.types import FactDraft, MemoryKind
from salesbot.models import Conversation, ConversationStatus, Customer, CustomerMemory, Message, Quote
from salesbot.settings import Settings
from tests.reporting.factories import Chat, add_message, make_chat, make_quote


@dataclass(frozen=True)
class Seeded:
    customer_id: int
    conversation_ids: tuple[int, int]
    neighbour_id: int


async def _chat_with_everything(session: AsyncSession, settings: Settings, *, phone: str | None = None) -> Chat:
    chat = await make_chat(session, phone=phone, status=ConversationStatus.CLOSED)
    await add_message(session, chat, "Do you have the LaserJet M211dw?")
    await make_quote(session, chat, sku="HP-LJM211DW", qty=3)
    await remember(
        session,
        get_embedder(settings),
        customer_id=chat.customer.id,
        conversation_id=chat.conversation.id,
        message_id=chat.messages[0].id,
        facts=[FactDraft(MemoryKind.PRODUCT, "HP-LJM211DW", "Asked about HP LaserJet M211dw Printer")],
    )
    return chat


async def seed(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Seeded:
    async with sessionmaker() as session:
        chat = await _chat_with_everything(session, settings)
        second = Conversation(customer_id=chat.customer.id, channel=chat.conversation.channel)
        session.add(second)
        await session.flush()
        await add_message(session, Chat(chat.customer, second), "I'm back")
        neighbour = await _chat_with_everything(session, settings)
        await session.commit()
        return Seeded(chat.customer.id, (chat.conversation.id, second.id), neighbour.customer.id)


async def left_of(sessionmaker: async_sessionmaker[AsyncSession], customer_id: int) -> dict[str, int]:
    """How many rows of each kind remain for the customer."""
    async with sessionmaker() as session:
        conversations = select(Conversation.id).where(Conversation.customer_id == customer_id).scalar_subquery()
        counts = {
            "customers": select(func.count()).where(Customer.id == customer_id),
            "conversations": select(func.count()).where(Conversation.customer_id == customer_id),
            "messages": select(func.count()).where(Message.conversation_id.in_(conversations)),
            "quotes": select(func.count()).where(Quote.conversation_id.in_(conversations)),
            "memories": select(func.count()).where(CustomerMemory.customer_id == customer_id),
        }
        return {name: int(await session.scalar(query) or 0) for name, query in counts.items()}


EVERYTHING = {"customers": 1, "conversations": 2, "messages": 2, "quotes": 1, "memories": 1}
NOTHING = dict.fromkeys(EVERYTHING, 0)
NEIGHBOUR = {"customers": 1, "conversations": 1, "messages": 1, "quotes": 1, "memories": 1}
