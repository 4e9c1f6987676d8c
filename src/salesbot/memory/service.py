"""Write and recall a customer's memory. Only flushes: the turn job (or request) commits.

Writing happens inside the turn's transaction (its SAVEPOINT): a draft discarded because newer messages
arrived takes its facts with it. Facts are deduplicated by (kind, key); an unchanged fact is only marked as
seen again, a changed one is re-embedded and supersedes the old text.
Recall ranks the customer's facts by cosine similarity to the customer's new words (pgvector, exact, top-N)
and picks a diverse few with MMR, so five near-identical printers do not crowd out the quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.kit.logging import get_logger
from salesbot.knowledge.embeddings import Embedder, embedding_memo
from salesbot.knowledge.vector_index import VectorTable, column_dimension
from salesbot.memory import repository
from salesbot.memory.mmr import DEFAULT_LAMBDA, mmr
from salesbot.memory.types import FactDraft, MemoryKind, RecalledFact
from salesbot.models import CustomerMemory
from salesbot.models._columns import utcnow

log = get_logger(__name__)

# Bounds: facts kept per customer, candidates fetched for MMR, facts put into the model's context.
MAX_FACTS_PER_CUSTOMER = 200
CANDIDATES = 20
CONTEXT_FACTS = 4
MEMORIES: VectorTable = VectorTable("customer_memories", "")
REEMBED_BATCH = 256


async def remember(
    session: AsyncSession,
    embedder: Embedder,
    *,
    customer_id: int,
    conversation_id: int | None,
    message_id: int | None,
    facts: Sequence[FactDraft],
) -> int:
    """Store the turn's facts for the customer (dedup, newer supersedes older); returns how many were
    (re-)embedded."""
    if not facts:
        return 0
    stored = await repository.stored_facts(session, customer_id)
    # The facts' order is the order of events: a later one counts as more recent (one microsecond apart).
    now = utcnow()
    changed: list[tuple[FactDraft, datetime]] = []
    unchanged: list[tuple[str, str, datetime]] = []
    for position, fact in enumerate(facts):
        when = now + timedelta(microseconds=position)
        old = stored.get((fact.kind.value, fact.key))
        if old is not None and old.text == fact.text and old.embedding_model == embedder.name:
            unchanged.append((fact.kind.value, fact.key, when))
        else:
            changed.append((fact, when))
    if changed:
        # A fact's text is the same for every customer it is remembered for ("Asked about <product>"): embedded
        # once per process.
        vectors = await embedding_memo.documents(embedder, [fact.text for fact, _ in changed])
        await repository.upsert_facts(
            session,
            customer_id,
            [
                {
                    "kind": fact.kind.value,
                    "key": fact.key,
                    "text": fact.text,
                    "embedding": vectors[position],
                    "embedding_model": embedder.name,
                    "conversation_id": conversation_id,
                    "message_id": message_id,
                    "updated_at": when,
                }
                for position, (fact, when) in enumerate(changed)
            ],
        )
    await repository.touch_facts(
        session, customer_id, unchanged, conversation_id=conversation_id, message_id=message_id
    )
    # The customer's facts are those stored plus the new keys: only a customer past the bound is pruned, so a turn
    # does not pay a DELETE that finds nothing (the turns of one chat run one at a time).
    new_keys = {(fact.kind.value, fact.key) for fact, _ in changed} - stored.keys()
    if len(stored) + len(new_keys) > MAX_FACTS_PER_CUSTOMER:
        await repository.prune(session, customer_id, keep=MAX_FACTS_PER_CUSTOMER)
    await session.flush()
    log.info("memory.remembered", customer=customer_id, new_or_changed=len(changed), seen_again=len(unchanged))
    return len(changed)


async def recall(
    session: AsyncSession,
    customer_id: int,
    query: str,
    limit: int = CONTEXT_FACTS,
    *,
    embedder: Embedder,
    exclude_conversation_id: int | None = None,
    lambda_: float = DEFAULT_LAMBDA,
) -> list[RecalledFact]:
    """The customer's facts most relevant to `query`, diverse (MMR over the top candidates), best first.

    Strictly this customer's facts. Texts are as stored (not masked): mask them before a model sees them.
    An empty query falls back to the newest facts.
    """
    if limit <= 0:
        return []
    if not query.strip():
        return await recent(session, customer_id, limit=limit, exclude_conversation_id=exclude_conversation_id)
    if not await repository.has_facts(session, customer_id, exclude_conversation_id=exclude_conversation_id):
        return []  # a new customer costs one indexed lookup, not an embedding
    return await ranked(
        session,
        customer_id,
        query,
        limit,
        embedder=embedder,
        exclude_conversation_id=exclude_conversation_id,
        lambda_=lambda_,
    )


async def ranked(
    session: AsyncSession,
    customer_id: int,
    query: str,
    limit: int,
    *,
    embedder: Embedder,
    exclude_conversation_id: int | None,
    lambda_: float = DEFAULT_LAMBDA,
) -> list[RecalledFact]:
    """`recall` for a non-empty query once the caller knows the customer has facts (embeds the query)."""
    vector = await embedder.embed_query(query)
    candidates = await repository.nearest(
        session,
        customer_id,
        vector,
        embedding_model=embedder.name,
        limit=CANDIDATES,
        exclude_conversation_id=exclude_conversation_id,
    )
    if not candidates:
        return []
    matrix = np.asarray([candidate.embedding for candidate in candidates], dtype=np.float32)
    order = mmr(np.asarray(vector, dtype=np.float32), matrix, limit=limit, lambda_=lambda_)
    return [
        RecalledFact(
            kind=MemoryKind(candidates[i].kind),
            text=candidates[i].text,
            conversation_id=candidates[i].conversation_id,
            updated_at=candidates[i].updated_at,
            similarity=1.0 - candidates[i].distance,
        )
        for i in order
    ]


async def recent(
    session: AsyncSession,
    customer_id: int,
    *,
    limit: int,
    kinds: Sequence[MemoryKind] = tuple(MemoryKind),
    exclude_conversation_id: int | None = None,
) -> list[RecalledFact]:
    """The customer's newest facts of these kinds (no query needed)."""
    rows = await repository.latest(session, customer_id, kinds=[kind.value for kind in kinds], limit=limit + 50)
    facts = [
        RecalledFact(MemoryKind(row.kind), row.text, row.conversation_id, row.updated_at)
        for row in rows
        if exclude_conversation_id is None or row.conversation_id != exclude_conversation_id
    ]
    return facts[:limit]


async def last_product(
    session: AsyncSession, customer_id: int, *, exclude_conversation_id: int | None = None
) -> RecalledFact | None:
    """The product most recently discussed with the customer (for "last time you asked about ...")."""
    found = await recent(
        session,
        customer_id,
        limit=1,
        kinds=(MemoryKind.CHOICE, MemoryKind.PRODUCT),
        exclude_conversation_id=exclude_conversation_id,
    )
    return found[0] if found else None


async def last_product_name(
    session: AsyncSession, customer_id: int, *, exclude_conversation_id: int | None = None
) -> str | None:
    """The catalog name of the product most recently discussed with the customer in an earlier conversation,
    if it is still sold (for the offline responder's "last time you asked about ... still interested?")."""
    return await repository.last_active_product_name(
        session,
        customer_id,
        kinds=(MemoryKind.CHOICE.value, MemoryKind.PRODUCT.value),
        exclude_conversation_id=exclude_conversation_id,
    )


async def adapt_empty_column(session: AsyncSession, embedder: Embedder) -> bool:
    """While no fact is stored, the column takes the configured model's dimension (flushes; the caller commits).

    The migration creates it for the default model; with another one every memory write would fail until a
    `salesbot reindex`. Nothing is lost while the table is empty; a filled one waits for the reindex."""
    if await column_dimension(session, MEMORIES) == embedder.dim or await repository.any_fact(session):
        return False
    await reembed(session, embedder)
    return True


async def reembed(session: AsyncSession, embedder: Embedder, *, force: bool = False) -> int:
    """Bring the stored facts to the configured model (`salesbot reindex`): the column follows the model's
    dimension (vectors of another dimension are dropped) and facts without a vector of this model are
    re-embedded (all of them with `force`). Returns the number of facts embedded."""
    if await column_dimension(session, MEMORIES) != embedder.dim:
        # DDL cannot take bind parameters; the dimension is an int.
        await session.execute(
            text(f"ALTER TABLE customer_memories ALTER COLUMN embedding TYPE vector({int(embedder.dim)}) USING NULL")
        )
        await session.execute(update(CustomerMemory).values(embedding_model=None))
    rows = await repository.texts_to_embed(session, embedding_model=None if force else embedder.name)
    for start in range(0, len(rows), REEMBED_BATCH):
        batch = rows[start : start + REEMBED_BATCH]
        vectors = await embedder.embed_documents([fact_text for _, fact_text in batch])
        await session.execute(
            update(CustomerMemory),
            [
                {"id": row_id, "embedding": [float(x) for x in vectors[i]], "embedding_model": embedder.name}
                for i, (row_id, _) in enumerate(batch)
            ],
        )
    await session.flush()
    log.info("memory.reembedded", facts=len(rows), model=embedder.name)
    return len(rows)
