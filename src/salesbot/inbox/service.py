"""The inbox: accept verified, parsed provider events durably and hand them to the worker, in milliseconds.

For each event: claim its provider id in Redis (drop known duplicates), then persist everything in ONE
transaction (customer, active conversation, message; echoes; statuses), commit, and only then signal the burst
buffer and enqueue jobs. A message is in PostgreSQL before the provider gets its 200, so neither a Redis loss
nor a worker crash can lose an acknowledged message, and the unique key `(channel, provider_message_id)` makes
every redelivery a no-op. No LLM, embedding or provider call happens here.

Two things take effect in that same transaction, before the provider gets its 200: a STOP opts the customer out
and withdraws every automated message still waiting to leave; an echo of one of our own sends is recorded as
such (anything else echoed is a person writing from the provider's inbox, which hands the chat over).

This function is the unit of work of a webhook request: it commits itself because the Redis signals and jobs
must follow the commit, not precede it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from salesbot import queues
from salesbot.conversations import consent
from salesbot.conversations import repository as conversations
from salesbot.db import unit_of_work
from salesbot.inbox import burst, claims
from salesbot.inbox import repository as inbox
from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import EchoMessage, InboundEvent, InboundMessage, StatusUpdate
from salesbot.models import Channel
from salesbot.models._columns import utcnow
from salesbot.outbox import repository as outbox_repository
from salesbot.outbox import service as outbox
from salesbot.outbox.gate import CONSENT_KEY_PREFIX
from salesbot.resources import Resources

log = get_logger(__name__)

TAKEOVER_JOB = "apply_takeover"


@dataclass
class InboxResult:
    stored: int = 0
    duplicates: int = 0
    own_echoes: int = 0
    manager_messages: int = 0
    statuses: int = 0
    # Conversations that received new customer messages (their turns were signalled).
    conversation_ids: set[int] = field(default_factory=set)
    # The database was unreachable: the events wait in the Redis spool (`inbox.spool`).
    spooled: bool = False


@dataclass
class _Pending:
    turns: set[int] = field(default_factory=set)
    takeovers: list[tuple[int, int]] = field(default_factory=list)
    deliveries: set[int] = field(default_factory=set)
    unmatched_statuses: list[StatusUpdate] = field(default_factory=list)


async def accept(resources: Resources, events: Sequence[InboundEvent]) -> InboxResult:
    """Persist `events` idempotently, then signal turns and jobs. Raises only when nothing could be persisted."""
    [result] = await accept_many(resources, [events])
    return result


async def accept_many(
    resources: Resources, webhooks: Sequence[Sequence[InboundEvent]], *, connection: AsyncConnection | None = None
) -> list[InboxResult]:
    """`accept` for several webhooks at once: one claim round trip, ONE transaction and commit, pipelined signals.

    Returns one result per webhook. Raises when the transaction failed: then nothing of any webhook was committed
    and their claims are given back (the batcher retries each webhook alone, so one bad event fails only its own).
    `connection`: a database connection the caller holds (not in a transaction) to run the transaction on,
    instead of one from the pool.
    """
    redis = resources.redis
    results = [InboxResult() for _ in webhooks]
    flat = [(index, event) for index, events in enumerate(webhooks) for event in events]
    keys = [claims.claim_key(event) for _index, event in flat]
    states = await claims.claim_many(redis, keys)
    work: list[tuple[int, InboundEvent]] = []
    for (index, event), state in zip(flat, states, strict=True):
        if state is claims.Claim.DONE:
            results[index].duplicates += 1
            log.info("inbox.duplicate_dropped", channel=event.channel.value, stage="claim")
        else:
            work.append((index, event))
    if not work:
        return results

    pending = _Pending()
    try:
        async with unit_of_work(resources.sessionmaker, bind=connection) as session:
            await _persist_all(session, resources, work, results, pending)
    except BaseException:
        # Nothing was committed: let the provider's redelivery through.
        await claims.release(redis, [key for key, state in zip(keys, states, strict=True) if state is claims.Claim.NEW])
        raise
    # Independent of each other (neither raises): one round trip's wait for both.
    await asyncio.gather(
        claims.mark_done(
            redis, [key for key, state in zip(keys, states, strict=True) if state is not claims.Claim.DONE]
        ),
        _after_commit(resources, pending),
    )
    return results


async def _persist_all(
    session: AsyncSession,
    resources: Resources,
    work: Sequence[tuple[int, InboundEvent]],
    results: list[InboxResult],
    pending: _Pending,
) -> None:
    """Events in arrival order; each run of consecutive customer messages is stored set-at-a-time."""
    run: list[tuple[int, InboundMessage]] = []
    for index, event in work:
        if isinstance(event, InboundMessage):
            run.append((index, event))
            continue
        await _store_messages(session, resources, run, results, pending)
        run = []
        await _persist(session, resources, event, results[index], pending)
    await _store_messages(session, resources, run, results, pending)


async def _store_messages(
    session: AsyncSession,
    resources: Resources,
    run: Sequence[tuple[int, InboundMessage]],
    results: list[InboxResult],
    pending: _Pending,
) -> None:
    """Customer messages (of one or many webhooks): conversations found or opened, then one multi-row insert."""
    if not run:
        return
    chats: dict[conversations.ChatKey, str | None] = {}
    for _index, event in run:
        chats.setdefault((event.channel, event.chat_id), event.contact_name)
    chat_ids = await conversations.find_or_create_active_conversations(session, chats, now=utcnow())
    rows: list[tuple[int, InboundMessage]] = []
    seen: set[tuple[Channel, str]] = set()
    for index, event in run:
        if (event.channel, event.provider_message_id) in seen:  # two copies in flight together: store the first
            _duplicate(results[index], event)
            continue
        seen.add((event.channel, event.provider_message_id))
        rows.append((index, event))
    # Grouped by chat, arrival order within a chat (the order turns read): concurrent transactions then take the
    # unique-key locks of different chats in the same order.
    rows.sort(key=lambda row: (row[1].channel.value, row[1].chat_id))
    stored = await inbox.insert_inbound_many(
        session, [(chat_ids[(event.channel, event.chat_id)][1], event) for _index, event in rows]
    )
    new_ids: list[int] = []
    new_conversations: set[int] = set()
    for index, event in rows:
        customer_id, conversation_id = chat_ids[(event.channel, event.chat_id)]
        message_id = stored.get((event.channel, event.provider_message_id))
        if message_id is None:
            _duplicate(results[index], event)
            continue
        results[index].stored += 1
        results[index].conversation_ids.add(conversation_id)
        pending.turns.add(conversation_id)
        if consent.classify(event.text, resources.settings.conversation) is consent.Command.OPT_OUT:
            await _apply_opt_out(session, customer_id, message_id)
        log.debug(
            "inbox.message_stored",
            channel=event.channel.value,
            conversation=conversation_id,
            message_id=message_id,
            chat=short_hash(event.chat_id),
            type=event.content_type,
        )
        new_ids.append(message_id)
        new_conversations.add(conversation_id)
    if new_ids:
        # One line per batch at INFO (a line costs ~0.3 ms of masking and formatting: per message it would be a
        # good part of the inbox's time); each message's own line is at DEBUG.
        log.info(
            "inbox.message_stored",
            messages=len(new_ids),
            conversations=len(new_conversations),
            first_message_id=min(new_ids),
            last_message_id=max(new_ids),
        )


def _duplicate(result: InboxResult, event: InboundMessage) -> None:
    result.duplicates += 1
    log.info("inbox.duplicate_dropped", channel=event.channel.value, stage="database")


async def _conversation_for(session: AsyncSession, event: EchoMessage, *, name: str | None) -> tuple[int, int]:
    """(customer id, active conversation id), created on first contact."""
    customer_id, conversation_id = await conversations.find_customer_and_active_conversation(
        session, channel=event.channel, chat_id=event.chat_id
    )
    if customer_id is not None and conversation_id is not None:
        return customer_id, conversation_id
    if customer_id is None:
        customer_id = await conversations.find_or_create_customer(
            session, channel=event.channel, chat_id=event.chat_id, name=name, now=utcnow()
        )
    return customer_id, await conversations.find_or_create_active_conversation(
        session, customer_id=customer_id, channel=event.channel
    )


async def _persist(
    session: AsyncSession,
    resources: Resources,
    event: EchoMessage | StatusUpdate,
    result: InboxResult,
    pending: _Pending,
) -> None:
    match event:
        case EchoMessage():
            await _persist_echo(session, resources, event, result, pending)
        case StatusUpdate():
            applied = await outbox.apply_status(session, event)
            if applied is None:
                pending.unmatched_statuses.append(event)
            else:
                result.statuses += 1
                if applied.resumed:
                    pending.deliveries.add(applied.conversation_id)


async def _apply_opt_out(session: AsyncSession, customer_id: int, message_id: int) -> None:
    """STOP takes effect in the transaction that stores it: opted out as of the message's own time (the turn
    replays the burst's keywords from there and writes the confirmation) and every automated message still
    waiting to leave withdrawn, so nothing automated leaves once the webhook is acknowledged."""
    at = await inbox.created_at(session, message_id)
    opted_out = await inbox.opt_out(session, customer_id, at=at)
    withdrawn = await outbox_repository.withdraw_automated(
        session, customer_id, reason="opted_out", keep_key_prefix=CONSENT_KEY_PREFIX
    )
    log.info("inbox.opt_out", message_id=message_id, newly=opted_out, conversations_withdrawn=len(withdrawn))


async def _persist_echo(
    session: AsyncSession, resources: Resources, event: EchoMessage, result: InboxResult, pending: _Pending
) -> None:
    """An outgoing message reported back: the bot's own (its recorded id, or a send of ours whose id is not known
    yet, see `outbox.service.match_own_echo`) or a human's, which hands the chat to the human."""
    if await inbox.message_id_by_provider_id(session, event.channel, event.provider_message_id) is not None:
        result.own_echoes += 1
        return
    now = utcnow()
    own = await outbox.match_own_echo(session, event, now=now)
    if own is not None:
        result.own_echoes += 1
        if own.resumed:
            pending.deliveries.add(own.conversation_id)
        log.info("inbox.own_echo_matched", channel=event.channel.value, message_id=own.message_id)
        return
    _customer_id, conversation_id = await _conversation_for(session, event, name=None)
    message_id = await inbox.insert_manager_echo(session, conversation_id, event, now=now)
    if message_id is None:
        result.duplicates += 1
        return
    result.manager_messages += 1
    pending.takeovers.append((conversation_id, message_id))
    log.info("inbox.manager_echo", channel=event.channel.value, conversation=conversation_id, message_id=message_id)


async def _after_commit(resources: Resources, pending: _Pending) -> None:
    """Signals that follow the commit. Failures are logged, not raised: the data is safe and the sweeps recover."""
    redis = resources.redis
    try:
        await burst.signal_messages(redis, resources.settings.conversation, sorted(pending.turns))
    except RedisError as exc:
        log.warning("inbox.turn_signal_failed", conversations=len(pending.turns), error=type(exc).__name__)
    for conversation_id, message_id in pending.takeovers:
        try:
            await redis.enqueue_job(
                TAKEOVER_JOB,
                conversation_id,
                message_id,
                _job_id=f"takeover:{message_id}",
                _queue_name=queues.MESSAGING,
            )
        except RedisError as exc:
            # The delivery gate still holds back bot replies older than the manager's message.
            log.warning("inbox.takeover_signal_failed", conversation=conversation_id, error=type(exc).__name__)
    for conversation_id in sorted(pending.deliveries):
        try:
            await outbox.schedule_delivery(redis, conversation_id)
        except RedisError as exc:
            # The outbox sweep finds pending rows nobody works on.
            log.warning("inbox.delivery_signal_failed", conversation=conversation_id, error=type(exc).__name__)
    for status in pending.unmatched_statuses:
        await _apply_early_status(resources, status)


async def _apply_early_status(resources: Resources, status: StatusUpdate) -> None:
    """A status for an id no row carries yet (the send call has not returned): stash it, then look once more.

    The deliverer records the id, commits, then reads the stash; this side stashes, then re-applies. Whatever the
    interleaving, one of the two sees the other's write.
    """
    await outbox.stash_early_status(resources.redis, status)
    async with unit_of_work(resources.sessionmaker) as session:
        matched = await outbox.apply_status(session, status) is not None
    log.info("inbox.status_early", channel=status.channel.value, status=status.status.value, matched=matched)
