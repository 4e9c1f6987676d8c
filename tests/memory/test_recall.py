"""The memory service on the real database and embedder: dedup, supersede, per-customer recall, MMR diversity."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.knowledge.embeddings import Embedder, get_embedder
from salesbot.memory import service as memory_service
from salesbot.memory.mmr import mmr
from salesbot.memory.service import last_product, recall, remember
from salesbot.memory.types import FactDraft, MemoryKind
from salesbot.models import Channel, Conversation, Customer, CustomerMemory
from salesbot.settings import Settings
from tests.fakes.embedder import RecordingEmbedder


async def _customer(session: AsyncSession, chat_id: str) -> tuple[Customer, Conversation]:
    customer = Customer(channel=Channel.CONSOLE, chat_id=chat_id)
    session.add(customer)
    await session.flush()
    conversation = Conversation(customer_id=customer.id, channel=Channel.CONSOLE)
    session.add(conversation)
    await session.flush()
    return customer, conversation


async def _remember(
    session: AsyncSession, embedder: Embedder, customer: Customer, conversation: Conversation, *facts: FactDraft
) -> None:
    await remember(
        session, embedder, customer_id=customer.id, conversation_id=conversation.id, message_id=None, facts=facts
    )


def product(sku: str, text: str) -> FactDraft:
    return FactDraft(MemoryKind.PRODUCT, sku, text)


def test_mmr_prefers_a_relevant_but_different_item_over_a_near_duplicate() -> None:
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    candidates = np.array(
        [
            [0.95, 0.31, 0.0],  # most relevant
            [0.94, 0.34, 0.0],  # a near-duplicate of the first
            [0.80, 0.0, 0.60],  # relevant, and about something else
        ],
        dtype=np.float32,
    )
    assert mmr(query, candidates, limit=2, lambda_=1.0) == [0, 1]  # relevance alone takes the duplicate
    assert mmr(query, candidates, limit=2) == [0, 2]
    assert mmr(query, candidates, limit=5) == [0, 2, 1]
    assert mmr(query, candidates, limit=0) == []


async def test_recall_ranks_by_relevance_and_skips_near_duplicates(
    db_session: AsyncSession, settings: Settings
) -> None:
    embedder = get_embedder(settings)
    customer, conversation = await _customer(db_session, "mem-relevance")
    await _remember(
        db_session,
        embedder,
        customer,
        conversation,
        product("HP-LJM211DW", "Asked about HP LaserJet M211dw Printer (SKU HP-LJM211DW, Printers)"),
        product("HP-LJM211DN", "Asked about HP LaserJet M211dn Printer (SKU HP-LJM211DN, Printers)"),
        product("HP-LJM211D", "Asked about HP LaserJet M211d Printer (SKU HP-LJM211D, Printers)"),
        FactDraft(MemoryKind.QUOTE, "7", "Received quote #7: HP LaserJet toner cartridge x 10; total 900.00 AED"),
        product("CH-ERGO", "Asked about Ergonomic office chair with headrest (SKU CH-ERGO, Furniture)"),
    )

    printers = await recall(db_session, customer.id, "laserjet printer", 2, embedder=embedder)
    assert printers[0].text.startswith("Asked about HP LaserJet M211")
    # The second pick is not another M211 variant but the next different relevant fact.
    assert "M211" not in printers[1].text
    assert printers[1].text.startswith("Received quote #7")
    relevance_only = await recall(db_session, customer.id, "laserjet printer", 2, embedder=embedder, lambda_=1.0)
    assert all("M211" in fact.text for fact in relevance_only)

    chairs = await recall(db_session, customer.id, "ergonomic chair", 1, embedder=embedder)
    assert [fact.kind for fact in chairs] == [MemoryKind.PRODUCT]
    assert "Ergonomic office chair" in chairs[0].text


async def test_the_same_fact_is_stored_once_and_a_newer_one_of_its_kind_supersedes(
    db_session: AsyncSession, settings: Settings
) -> None:
    embedder = get_embedder(settings)
    customer, first = await _customer(db_session, "mem-dedup")
    chair = product("CH-ERGO", "Asked about Ergonomic office chair (SKU CH-ERGO, Furniture)")
    await _remember(
        db_session, embedder, customer, first, chair, FactDraft(MemoryKind.COMPANY, "company", "Company: Acme")
    )
    await _remember(
        db_session, embedder, customer, first, chair, FactDraft(MemoryKind.COMPANY, "company", "Company: Acme")
    )
    await _remember(
        db_session, embedder, customer, first, FactDraft(MemoryKind.COMPANY, "company", "Company: Globex Trading")
    )

    rows = (
        await db_session.execute(
            select(CustomerMemory.kind, CustomerMemory.text).where(CustomerMemory.customer_id == customer.id)
        )
    ).all()
    assert sorted(rows) == [
        ("company", "Company: Globex Trading"),
        ("product", "Asked about Ergonomic office chair (SKU CH-ERGO, Furniture)"),
    ]
    newest = await last_product(db_session, customer.id)
    assert newest is not None
    assert newest.text.startswith("Asked about Ergonomic office chair")


async def test_a_customer_keeps_the_newest_facts_up_to_the_bound(
    db_session: AsyncSession, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_service, "MAX_FACTS_PER_CUSTOMER", 3)
    embedder = get_embedder(settings)
    customer, conversation = await _customer(db_session, "mem-bound")

    async def kept() -> list[str]:
        keys = await db_session.scalars(
            select(CustomerMemory.key).where(CustomerMemory.customer_id == customer.id).order_by(CustomerMemory.key)
        )
        return list(keys)

    for sku in ("A-1", "B-2", "C-3"):
        await _remember(db_session, embedder, customer, conversation, product(sku, f"Asked about {sku}"))
    assert await kept() == ["A-1", "B-2", "C-3"]
    # Seen again: still three facts, and A-1 is now the newest.
    await _remember(db_session, embedder, customer, conversation, product("A-1", "Asked about A-1"))
    await _remember(db_session, embedder, customer, conversation, product("D-4", "Asked about D-4"))
    assert await kept() == ["A-1", "C-3", "D-4"]
    await _remember(
        db_session,
        embedder,
        customer,
        conversation,
        product("E-5", "Asked about E-5"),
        product("F-6", "Asked about F-6"),
    )
    assert await kept() == ["D-4", "E-5", "F-6"]


async def test_recall_never_returns_another_customers_facts(db_session: AsyncSession, settings: Settings) -> None:
    embedder = get_embedder(settings)
    alice, alice_chat = await _customer(db_session, "mem-alice")
    bob, bob_chat = await _customer(db_session, "mem-bob")
    await _remember(db_session, embedder, alice, alice_chat, product("HP-LJM211DW", "Asked about HP LaserJet M211dw"))
    await _remember(db_session, embedder, bob, bob_chat, product("CH-ERGO", "Asked about Ergonomic office chair"))

    bobs = await recall(db_session, bob.id, "HP LaserJet M211dw", 10, embedder=embedder)
    assert [fact.text for fact in bobs] == ["Asked about Ergonomic office chair"]
    assert await last_product(db_session, bob.id) is not None
    nobody, _ = await _customer(db_session, "mem-nobody")
    assert await recall(db_session, nobody.id, "HP LaserJet M211dw", 10, embedder=embedder) == []
    assert await last_product(db_session, nobody.id) is None
    count = await db_session.scalar(select(func.count()).select_from(CustomerMemory))
    assert count is not None
    assert count >= 2


async def test_a_fact_remembered_for_many_customers_is_embedded_once(
    db_session: AsyncSession, settings: Settings
) -> None:
    embedder = RecordingEmbedder(get_embedder(settings))
    fact = FactDraft(MemoryKind.PRODUCT, "HP-LJM211DW", "Asked about HP LaserJet M211dw Printer")
    stored = []
    for chat_id in ("memo-a", "memo-b", "memo-c"):
        customer, conversation = await _customer(db_session, chat_id)
        await _remember(db_session, embedder, customer, conversation, fact)
        stored.append(
            await db_session.scalar(select(CustomerMemory.embedding).where(CustomerMemory.customer_id == customer.id))
        )

    assert embedder.documents == [fact.text]
    expected = (await get_embedder(settings).embed_documents([fact.text]))[0]
    assert all(np.allclose(np.asarray(vector), expected) for vector in stored)
