"""The memory's two hooks in an agent turn: recall before the run, remember after it.

Memory must never cost the customer an answer: each hook runs in its own SAVEPOINT and a failure (the
embedder, a vector column of another dimension) is logged and the turn goes on without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_ai.messages import ModelMessage
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.kit.logging import get_logger
from salesbot.memory.extract import facts_from_turn, tool_results
from salesbot.memory.repository import has_facts
from salesbot.memory.service import CONTEXT_FACTS, last_product_name, ranked, recent, remember
from salesbot.memory.types import RecalledFact
from salesbot.models import Conversation, Customer
from salesbot.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class TurnMemory:
    """What the memory tells a turn about the customer's earlier conversations."""

    facts: tuple[RecalledFact, ...] = ()
    # Catalog name of the product discussed last time (still sold), for a returning customer's greeting.
    last_product: str | None = None


async def recall_for_turn(
    session: AsyncSession, settings: Settings, customer: Customer, conversation: Conversation, query: str
) -> TurnMemory:
    """What earlier conversations of this customer say about what they write now (this conversation's own
    facts are in its history already)."""
    from salesbot.knowledge.embeddings import get_embedder

    try:
        async with session.begin_nested():
            # A customer without facts from earlier conversations (every new one) costs this one lookup.
            if not await has_facts(session, customer.id, exclude_conversation_id=conversation.id):
                return TurnMemory()
            product = await last_product_name(session, customer.id, exclude_conversation_id=conversation.id)
            if query.strip():
                facts = await ranked(
                    session,
                    customer.id,
                    query,
                    CONTEXT_FACTS,
                    embedder=get_embedder(settings),
                    exclude_conversation_id=conversation.id,
                )
            else:
                facts = await recent(session, customer.id, limit=CONTEXT_FACTS, exclude_conversation_id=conversation.id)
    except Exception:
        log.exception("memory.recall_failed", conversation=conversation.id)
        return TurnMemory()
    return TurnMemory(tuple(facts), product)


async def remember_turn(
    session: AsyncSession,
    settings: Settings,
    customer: Customer,
    conversation: Conversation,
    messages: Sequence[ModelMessage],
    *,
    message_id: int | None,
) -> None:
    """Store what this turn's tools showed and changed (products, quotes, choices, company, need, stage)."""
    from salesbot.knowledge.embeddings import get_embedder

    facts = facts_from_turn(
        tool_results(messages),
        company=customer.company,
        need=(conversation.facts or {}).get("need"),
        stage=conversation.sales_stage.value,
    )
    if not facts:
        return
    try:
        async with session.begin_nested():
            await remember(
                session,
                get_embedder(settings),
                customer_id=customer.id,
                conversation_id=conversation.id,
                message_id=message_id,
                facts=facts,
            )
    except Exception:
        log.exception("memory.write_failed", conversation=conversation.id)
