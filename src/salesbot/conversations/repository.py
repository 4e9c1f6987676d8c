"""SQL for conversations (services call these and only flush; the job or request commits)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from salesbot.agent.reply import LLMUsage
from salesbot.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    LlmUsage,
    Message,
    Owner,
)

# The predicate of the partial unique index `uq_conversations_active_customer`.
ACTIVE_ONLY = text("status = 'active'")


async def release_expired_takeovers(session: AsyncSession, *, now: datetime) -> int:
    """Hand chats back to the bot whose human takeover has run out; returns how many."""
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.owner == Owner.HUMAN, Conversation.owner_until.is_not(None), Conversation.owner_until <= now
        )
        .values(owner=Owner.BOT, owner_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- customers and conversations of inbound messages --------------------------------------------------------


async def find_customer_and_active_conversation(
    session: AsyncSession, *, channel: Channel, chat_id: str
) -> tuple[int | None, int | None]:
    """(customer id, active conversation id) in one read; the common case of a returning customer."""
    row = (
        await session.execute(
            select(Customer.id, Conversation.id)
            .outerjoin(
                Conversation,
                (Conversation.customer_id == Customer.id) & (Conversation.status == ConversationStatus.ACTIVE),
            )
            .where(Customer.channel == channel, Customer.chat_id == chat_id)
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


async def find_or_create_customer(
    session: AsyncSession, *, channel: Channel, chat_id: str, name: str | None, now: datetime
) -> int:
    """The customer's id, created on first contact.

    Reads first and inserts only when missing: an existing row may be locked for seconds by a running turn (the
    agent saving customer details), and a plain read never waits for that lock.
    """
    found: int | None = await session.scalar(
        select(Customer.id).where(Customer.channel == channel, Customer.chat_id == chat_id)
    )
    if found is not None:
        return found
    created: int | None = await session.scalar(
        insert(Customer)
        .values(channel=channel, chat_id=chat_id, name=name, first_inbound_at=now, last_inbound_at=now)
        .on_conflict_do_nothing(index_elements=[Customer.channel, Customer.chat_id])
        .returning(Customer.id)
    )
    if created is not None:
        return created
    # A concurrent request created it between our read and insert.
    return (
        await session.execute(select(Customer.id).where(Customer.channel == channel, Customer.chat_id == chat_id))
    ).scalar_one()


async def find_or_create_active_conversation(session: AsyncSession, *, customer_id: int, channel: Channel) -> int:
    """The customer's active conversation (at most one, by a partial unique index), opened when there is none."""
    query = select(Conversation.id).where(
        Conversation.customer_id == customer_id, Conversation.status == ConversationStatus.ACTIVE
    )
    found: int | None = await session.scalar(query)
    if found is not None:
        return found
    created: int | None = await session.scalar(
        insert(Conversation)
        .values(customer_id=customer_id, channel=channel)
        .on_conflict_do_nothing(index_elements=[Conversation.customer_id], index_where=ACTIVE_ONLY)
        .returning(Conversation.id)
    )
    if created is not None:
        return created
    return (await session.execute(query)).scalar_one()


ChatKey = tuple[Channel, str]


async def find_or_create_active_conversations(
    session: AsyncSession, chats: dict[ChatKey, str | None], *, now: datetime
) -> dict[ChatKey, tuple[int, int]]:
    """(customer id, active conversation id) of each `(channel, chat_id)` (mapped to the contact name a new
    customer gets), created on first contact: the set-at-a-time form of `find_customer_and_active_conversation`,
    `find_or_create_customer` and `find_or_create_active_conversation`, in at most six statements for any number
    of chats.

    Reads first and inserts only what is missing, like the single-chat functions. Inserts go in key order, so two
    transactions creating overlapping sets of customers or conversations lock them in the same order (no deadlock).
    """
    found: dict[ChatKey, tuple[int, int | None]] = {}

    async def read(keys: Sequence[ChatKey]) -> None:
        rows = await session.execute(
            select(Customer.channel, Customer.chat_id, Customer.id, Conversation.id)
            .outerjoin(
                Conversation,
                (Conversation.customer_id == Customer.id) & (Conversation.status == ConversationStatus.ACTIVE),
            )
            # Two plain INs (on the unique index's two columns) render much faster than a tuple IN; the few rows of
            # another channel's same chat id, if any, are dropped below.
            .where(
                Customer.channel.in_({channel for channel, _chat in keys}),
                Customer.chat_id.in_({chat_id for _channel, chat_id in keys}),
            )
        )
        wanted = set(keys)
        for channel, chat_id, customer_id, conversation_id in rows:
            if (channel, chat_id) in wanted:
                found[(channel, chat_id)] = (customer_id, conversation_id)

    await read(list(chats))
    missing = sorted((key for key in chats if key not in found), key=lambda key: (key[0].value, key[1]))
    # Executemany, not a multi-row VALUES: the statement compiles once (cached) and SQLAlchemy expands the rows.
    connection = await session.connection()
    if missing:
        created = await connection.execute(
            insert(Customer)
            .on_conflict_do_nothing(index_elements=[Customer.channel, Customer.chat_id])
            .returning(Customer.channel, Customer.chat_id, Customer.id),
            [
                {"channel": channel, "chat_id": chat_id, "name": chats[(channel, chat_id)]}
                | {"first_inbound_at": now, "last_inbound_at": now}
                for channel, chat_id in missing
            ],
        )
        for channel, chat_id, customer_id in created:
            found[(channel, chat_id)] = (customer_id, None)
        # Created by a concurrent request between our read and insert.
        if raced := [key for key in missing if key not in found]:
            await read(raced)
    without = sorted(
        (customer_id, key) for key, (customer_id, conversation_id) in found.items() if conversation_id is None
    )
    if without:
        opened = await connection.execute(
            insert(Conversation)
            .on_conflict_do_nothing(index_elements=[Conversation.customer_id], index_where=ACTIVE_ONLY)
            .returning(Conversation.customer_id, Conversation.id),
            [{"customer_id": customer_id, "channel": key[0]} for customer_id, key in without],
        )
        by_customer: dict[int, int] = dict(opened.all())
        if raced_customers := [customer_id for customer_id, _key in without if customer_id not in by_customer]:
            rows = await session.execute(
                select(Conversation.customer_id, Conversation.id).where(
                    Conversation.customer_id.in_(raced_customers), Conversation.status == ConversationStatus.ACTIVE
                )
            )
            by_customer.update(rows.all())
        for customer_id, key in without:
            found[key] = (customer_id, by_customer[customer_id])
    return {
        key: (customer_id, conversation_id)
        for key, (customer_id, conversation_id) in found.items()
        if conversation_id is not None
    }


async def get_conversation(session: AsyncSession, conversation_id: int) -> Conversation | None:
    """The conversation with its customer loaded."""
    return await session.scalar(
        select(Conversation).options(joinedload(Conversation.customer)).where(Conversation.id == conversation_id)
    )


async def lock_unprocessed_inbound(
    session: AsyncSession, conversation_id: int, *, after_id: int = 0, lock: bool = True
) -> list[Message]:
    """Customer messages no turn has consumed yet, oldest first, row-locked until the transaction ends (`lock`)."""
    query = (
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.INBOUND,
            Message.processed_at.is_(None),
            Message.id > after_id,
        )
        .order_by(Message.id)
        .execution_options(populate_existing=True)
    )
    result = await session.scalars(query.with_for_update() if lock else query)
    return list(result)


async def mark_processed(session: AsyncSession, message_ids: Sequence[int], *, now: datetime) -> None:
    await session.execute(update(Message).where(Message.id.in_(message_ids)).values(processed_at=now))


async def move_messages(session: AsyncSession, message_ids: Sequence[int], *, to_conversation_id: int) -> None:
    await session.execute(update(Message).where(Message.id.in_(message_ids)).values(conversation_id=to_conversation_id))


async def conversations_with_stalled_inbound(session: AsyncSession, *, older_than: datetime, limit: int) -> list[int]:
    """Conversations whose customer messages wait for a turn since before `older_than`.

    Rows a turn's commit holds (FOR UPDATE) are skipped: that turn is alive and consumes them. (A turn holds no
    row while its model thinks: the sweep skips the chats whose turn lock is held.)
    """
    rows = await session.scalars(
        select(Message.conversation_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.processed_at.is_(None),
            Message.created_at < older_than,
        )
        .order_by(Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return sorted(set(rows))


async def unapplied_manager_echoes(session: AsyncSession, conversation_id: int) -> list[int]:
    """Messages a manager wrote outside salesbot (provider echoes) whose takeover was not applied yet.

    `apply_manager_echo` marks an echo applied by setting its `processed_at`.
    """
    result = await session.scalars(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUTBOUND,
            Message.author == Author.MANAGER,
            Message.idempotency_key.is_(None),
            Message.processed_at.is_(None),
        )
        .order_by(Message.id)
    )
    return list(result)


async def cancel_pending_bot_messages(session: AsyncSession, conversation_id: int, *, reason: str) -> int:
    """Withdraw the bot's replies that have not left yet (a human took the chat, or it was closed)."""
    result = await session.execute(
        update(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUTBOUND,
            Message.author == Author.BOT,
            Message.delivery_status == DeliveryStatus.PENDING,
        )
        .values(delivery_status=DeliveryStatus.CANCELLED, error=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- the turn: read without locks, lock to commit, usage -------------------------------------------------------


async def read_detached(session: AsyncSession, conversation_id: int) -> tuple[Conversation, Customer] | None:
    """The conversation and its customer as of now, detached: the agent's changes to them stay in memory until
    the commit step applies them, so generating locks neither row."""
    conversation = await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id).execution_options(populate_existing=True)
    )
    if conversation is None:
        return None
    customer = await session.get_one(Customer, conversation.customer_id, populate_existing=True)
    session.expunge(conversation)
    session.expunge(customer)
    set_committed_value(conversation, "customer", customer)
    return conversation, customer


async def lock_conversation_and_customer(session: AsyncSession, conversation_id: int) -> tuple[Conversation, Customer]:
    """The rows as committed by everyone else, locked until the turn commits (a manager's action waits a moment
    for the commit, never for the model)."""
    # One statement: FOR NO KEY UPDATE locks the row of each table it reads.
    conversation, customer = (
        await session.execute(
            select(Conversation, Customer)
            .join(Customer, Customer.id == Conversation.customer_id)
            .where(Conversation.id == conversation_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).one()  # conversations are never deleted while messages wait
    return conversation, customer


def add_llm_usage(session: AsyncSession, conversation_id: int, usages: Sequence[LLMUsage], outcome: str) -> None:
    """One `llm_usage` row per generation that asked an LLM (in the transaction that decided the draft's fate)."""
    for usage in usages:
        if not usage.requests:
            continue
        session.add(
            LlmUsage(
                conversation_id=conversation_id,
                outcome=outcome,
                model=usage.model,
                requests=usage.requests,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
                cost=usage.cost,
            )
        )
