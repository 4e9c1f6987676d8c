"""The inbox: accept verified, parsed provider events durably and hand them to the worker, in milliseconds.

For each event: claim its provider id in Redis (drop known duplicates), then persist everything in ONE
transaction (customer, active conversation, message; echoes; statuses), commit, and only then signal the burst
buffer and enqueue jobs. A message is in PostgreSQL before the provider gets its 200, so neither a Redis loss
nor a worker crash can lose an acknowledged message, and the unique key `(channel, provider_message_id)` makes
every redelivery a no-op. No LLM, embedding or provider call happens here.

This function is the unit of work of a webhook request: it commits itself because the Redis signals and jobs
must follow the commit, not precede it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.conversations import repository as conversations
from salesbot.db import unit_of_work
from salesbot.inbox import burst, claims
from salesbot.inbox import repository as inbox
from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import EchoMessage, InboundEvent, InboundMessage, StatusUpdate
from salesbot.models._columns import utcnow
from salesbot.outbox import service as outbox
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


@dataclass
class _Pending:
    turns: set[int] = field(default_factory=set)
    takeovers: list[tuple[int, int]] = field(default_factory=list)
    unmatched_statuses: list[StatusUpdate] = field(default_factory=list)


async def accept(resources: Resources, events: Sequence[InboundEvent]) -> InboxResult:
    """Persist `events` idempotently, then signal turns and jobs. Raises only when nothing could be persisted."""
    redis = resources.redis
    result = InboxResult()
    work: list[tuple[InboundEvent, str]] = []
    owned: list[str] = []
    for event in events:
        key = claims.claim_key(event)
        state = await claims.claim(redis, key)
        if state is claims.Claim.DONE:
            result.duplicates += 1
            log.info("inbox.duplicate_dropped", channel=event.channel.value, stage="claim")
            continue
        if state is claims.Claim.NEW:
            owned.append(key)
        work.append((event, key))
    if not work:
        return result

    pending = _Pending()
    try:
        async with unit_of_work(resources.sessionmaker) as session:
            for event, _key in work:
                await _persist(session, resources, event, result, pending)
    except BaseException:
        # Nothing was committed: let the provider's redelivery through.
        await claims.release(redis, owned)
        raise
    await claims.mark_done(redis, [key for _event, key in work])
    await _after_commit(resources, pending)
    result.conversation_ids = pending.turns
    return result


async def _conversation_for(session: AsyncSession, event: InboundMessage | EchoMessage, *, name: str | None) -> int:
    customer_id, conversation_id = await conversations.find_customer_and_active_conversation(
        session, channel=event.channel, chat_id=event.chat_id
    )
    if conversation_id is not None:
        return conversation_id
    if customer_id is None:
        customer_id = await conversations.find_or_create_customer(
            session, channel=event.channel, chat_id=event.chat_id, name=name, now=utcnow()
        )
    return await conversations.find_or_create_active_conversation(
        session, customer_id=customer_id, channel=event.channel
    )


async def _persist(
    session: AsyncSession, resources: Resources, event: InboundEvent, result: InboxResult, pending: _Pending
) -> None:
    match event:
        case InboundMessage():
            conversation_id = await _conversation_for(session, event, name=event.contact_name)
            message_id = await inbox.insert_inbound(session, conversation_id, event)
            if message_id is None:
                result.duplicates += 1
                log.info("inbox.duplicate_dropped", channel=event.channel.value, stage="database")
                return
            result.stored += 1
            pending.turns.add(conversation_id)
            log.info(
                "inbox.message_stored",
                channel=event.channel.value,
                conversation=conversation_id,
                message_id=message_id,
                chat=short_hash(event.chat_id),
                type=event.content_type,
            )
        case EchoMessage():
            await _persist_echo(session, resources, event, result, pending)
        case StatusUpdate():
            if await outbox.apply_status(session, event):
                result.statuses += 1
            else:
                pending.unmatched_statuses.append(event)


async def _persist_echo(
    session: AsyncSession, resources: Resources, event: EchoMessage, result: InboxResult, pending: _Pending
) -> None:
    """An outgoing message reported back: the bot's own (recorded id, or pending-send marker) or a human's."""
    if await inbox.message_id_by_provider_id(session, event.channel, event.provider_message_id) is not None:
        result.own_echoes += 1
        return
    own = await outbox.pending_send_for_echo(resources.redis, event.channel, event.chat_id, event.text)
    now = utcnow()
    if own is not None:
        # The echo beat the send call's response: record the id now so nothing mistakes it for a human.
        await inbox.attach_echo_to_own_message(session, own, event.provider_message_id, now=now)
        result.own_echoes += 1
        log.info("inbox.own_echo_matched", channel=event.channel.value, message_id=own)
        return
    conversation_id = await _conversation_for(session, event, name=None)
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
    for conversation_id in sorted(pending.turns):
        try:
            await burst.signal_message(redis, resources.settings.conversation, conversation_id)
        except RedisError as exc:
            log.warning("inbox.turn_signal_failed", conversation=conversation_id, error=type(exc).__name__)
    for conversation_id, message_id in pending.takeovers:
        try:
            await redis.enqueue_job(TAKEOVER_JOB, conversation_id, message_id, _job_id=f"takeover:{message_id}")
        except RedisError as exc:
            # The delivery gate still holds back bot replies older than the manager's message.
            log.warning("inbox.takeover_signal_failed", conversation=conversation_id, error=type(exc).__name__)
    for status in pending.unmatched_statuses:
        await _apply_early_status(resources, status)


async def _apply_early_status(resources: Resources, status: StatusUpdate) -> None:
    """A status for an id no row carries yet (the send call has not returned): stash it, then look once more.

    The deliverer records the id, commits, then reads the stash; this side stashes, then re-applies. Whatever the
    interleaving, one of the two sees the other's write.
    """
    await outbox.stash_early_status(resources.redis, status)
    async with unit_of_work(resources.sessionmaker) as session:
        matched = await outbox.apply_status(session, status)
    log.info("inbox.status_early", channel=status.channel.value, status=status.status.value, matched=matched)
