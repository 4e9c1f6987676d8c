"""The outbox's entry points: write outbound rows (inside the caller's transaction), schedule their delivery
(after the caller's commit), and the small pieces of Redis state delivery relies on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot import queues
from salesbot.alerts import service as alerts
from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import EchoMessage, StatusUpdate
from salesbot.models import Author, Channel, Conversation, DeliveryStatus, Direction, Message
from salesbot.models._columns import utcnow
from salesbot.outbox import repository
from salesbot.outbox.splitting import split_text

log = get_logger(__name__)

DELIVER_JOB = "deliver_outbox"
EARLY_STATUS_TTL_SECONDS = 600
TEMPLATE_KEY_SUFFIX = ":template"


def _generation_key(conversation_id: int) -> str:
    return f"sb:outbox:gen:{conversation_id}"


async def write_outbound(
    session: AsyncSession,
    conversation: Conversation,
    *,
    text: str,
    author: Author,
    key_prefix: str,
    limit: int,
    in_reply_to_id: int | None = None,
    flush: bool = True,
) -> list[Message]:
    """Pending outbound rows for `text`, split under `limit`, keyed `{key_prefix}:{part}` (flushes only; `flush`
    False: added to the session, for the caller's next flush).

    The key is deterministic for replies (`reply:{conversation}:{last inbound id}`): a retried turn writes the same
    keys, and the unique index refuses a second copy.
    """
    rows = [
        Message(
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction=Direction.OUTBOUND,
            author=author,
            text=part,
            delivery_status=DeliveryStatus.PENDING,
            idempotency_key=f"{key_prefix}:{index}",
            part_index=index,
            in_reply_to_id=in_reply_to_id,
        )
        for index, part in enumerate(split_text(text, limit))
    ]
    session.add_all(rows)
    if flush:
        await session.flush()
    return rows


@dataclass(frozen=True)
class OutboundMedia:
    """A file sent after a reply's text: a product photo, a quotation PDF. The provider fetches `url` itself."""

    url: str
    # "image" or "document" (the row's content type).
    kind: str
    caption: str = ""
    filename: str | None = None

    @classmethod
    def of(cls, message: Message) -> OutboundMedia | None:
        """What an outbound media row sends (None for a text row)."""
        if message.content_type not in MEDIA_KINDS or not message.media:
            return None
        item = message.media[0]
        return cls(url=item["url"], kind=message.content_type, caption=message.text, filename=item.get("filename"))


MEDIA_KINDS = frozenset({"image", "document"})


async def write_outbound_media(
    session: AsyncSession,
    conversation: Conversation,
    media: Sequence[OutboundMedia],
    *,
    author: Author,
    key_prefix: str,
    first_index: int,
    in_reply_to_id: int | None = None,
    flush: bool = True,
) -> list[Message]:
    """Pending outbound rows for files, one each, keyed after the reply's text parts (`{key_prefix}:{index}`), so
    they are parts of the same reply: sent after it in order, gated each, withdrawn with it (flushes only, as
    `write_outbound`)."""
    rows = [
        Message(
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction=Direction.OUTBOUND,
            author=author,
            text=item.caption,
            content_type=item.kind,
            media=[{"url": item.url, "filename": item.filename}],
            delivery_status=DeliveryStatus.PENDING,
            idempotency_key=f"{key_prefix}:{index}",
            part_index=index,
            in_reply_to_id=in_reply_to_id,
        )
        for index, item in enumerate(media, start=first_index)
    ]
    session.add_all(rows)
    if flush:
        await session.flush()
    return rows


async def schedule_delivery(redis: ArqRedis, conversation_id: int) -> None:
    """Make sure a delivery job will send the conversation's pending rows; call after the commit that wrote them.

    The job id carries a generation that each delivery job bumps when it starts scanning: a call before that
    coalesces into the queued job (which will see the rows), a call after it enqueues the next one.
    """
    generation = await redis.get(_generation_key(conversation_id))
    suffix = generation.decode() if isinstance(generation, bytes) else "0"
    await redis.enqueue_job(
        DELIVER_JOB, conversation_id, _job_id=f"deliver:{conversation_id}:{suffix}", _queue_name=queues.MESSAGING
    )


async def start_generation(redis: Redis, conversation_id: int) -> None:
    await redis.incr(_generation_key(conversation_id))


async def schedule_delivery_extra(redis: ArqRedis, conversation_id: int, *, defer_seconds: float = 0) -> None:
    """An additional run (work arrived while the lock was held, or a budget ran out)."""
    await redis.enqueue_job(
        DELIVER_JOB,
        conversation_id,
        _job_id=f"deliver:{conversation_id}:extra:{uuid.uuid4().hex}",
        _queue_name=queues.MESSAGING,
        _defer_by=defer_seconds or None,
    )


# --- echoes: recognise the bot's own sends when the provider reports them back ------------------------------------

# An echo is matched to a send of ours attempted at most this long ago (echoes follow their sends within seconds;
# the bound keeps an old row whose id never became known from swallowing a person's later message).
ECHO_MATCH_WINDOW = timedelta(minutes=10)
# `error` of a row that went out as the closed-window template instead of its text.
TEMPLATE_SENT_NOTE = "window_closed: the configured template was sent instead of this text"
# `error` of the parts of a reply withdrawn because an earlier part is held as unconfirmed (restored if it is
# reconciled after all).
UNCONFIRMED_PART = "previous_part_unconfirmed"


@dataclass(frozen=True)
class OwnEcho:
    message_id: int
    conversation_id: int
    # Parts withdrawn behind a held row went back to pending: schedule delivery after the commit.
    resumed: bool


async def match_own_echo(session: AsyncSession, event: EchoMessage, *, now: datetime) -> OwnEcho | None:
    """If `event` reports one of salesbot's own sends whose provider id is not known yet, record it (id, `sent`)
    and return it; None means a person sent the message. Reconciles a send held as `unconfirmed` (flushes only).
    """
    message = await repository.own_send_for_echo(
        session,
        event.channel,
        event.chat_id,
        text=event.text,
        is_template=event.is_template,
        idempotency_key=event.idempotency_key,
        attempted_since=now - ECHO_MATCH_WINDOW,
    )
    if message is None:
        return None
    was_held = message.delivery_status is DeliveryStatus.UNCONFIRMED
    resumed = await _record_reported_send(session, message, event.provider_message_id, now=now)
    log.info("outbox.echo_reconciled", message_id=message.id, conversation=message.conversation_id, held=was_held)
    return OwnEcho(message_id=message.id, conversation_id=message.conversation_id, resumed=resumed)


async def _record_reported_send(
    session: AsyncSession, message: Message, provider_message_id: str, *, now: datetime
) -> bool:
    """The provider reported a send of ours whose answer we never got (an echo, or a status carrying our key):
    record its id and `sent`, and let the parts withdrawn behind a held row go; True when some went back to
    pending (schedule delivery after the commit)."""
    was_held = message.delivery_status is DeliveryStatus.UNCONFIRMED
    message.provider_message_id = provider_message_id
    if message.delivery_status in _NOT_YET_SENT:
        # What the provider reports wins over a withdrawal or a hold that raced the send.
        message.delivery_status = DeliveryStatus.SENT
        message.sent_at = message.sent_at or now
        message.error = TEMPLATE_SENT_NOTE if message.content_type == "template" else None
    message.uncertain_since = None
    message.next_attempt_at = None
    resumed = was_held and await repository.restore_group(session, message, reason=UNCONFIRMED_PART) > 0
    await session.flush()
    return resumed


_NOT_YET_SENT = frozenset(
    {DeliveryStatus.PENDING, DeliveryStatus.UNCONFIRMED, DeliveryStatus.CANCELLED, DeliveryStatus.FAILED}
)


# --- statuses ---------------------------------------------------------------------------------------------------


def _early_key(channel: Channel, provider_message_id: str) -> str:
    return f"sb:outbox:early-status:{channel.value}:{short_hash(provider_message_id, length=32)}"


@dataclass(frozen=True)
class AppliedStatus:
    conversation_id: int
    # A held row was reconciled and the parts behind it went back to pending: schedule delivery after the commit.
    resumed: bool = False


async def apply_status(session: AsyncSession, event: StatusUpdate) -> AppliedStatus | None:
    """Record a delivery status from a webhook (never backwards); None when the message id is unknown yet.

    A status that carries our idempotency key (Meta) also finds a row whose send answer never arrived, even one
    held as `unconfirmed`: the row gets the provider id and `sent`, which reconciles an attempt that may otherwise
    have been sent again, and the rest of its reply may go.
    """
    resumed = False
    message = await repository.lock_by_provider_id(session, event.channel, event.provider_message_id)
    if message is None and event.idempotency_key:
        # The closed-window template of a row is sent with the row's key plus this suffix (outbox delivery).
        key = event.idempotency_key.removesuffix(TEMPLATE_KEY_SUFFIX)
        message = await repository.lock_unreconciled_by_key(session, event.channel, key)
        if message is not None:
            resumed = await _record_reported_send(session, message, event.provider_message_id, now=utcnow())
            log.info("outbox.reconciled_by_status", message_id=message.id, status=event.status.value)
    if message is None:
        return None
    applied = AppliedStatus(message.conversation_id, resumed)
    if not repository.status_advances(message.delivery_status, event.status):
        return applied
    message.delivery_status = event.status
    if event.status is DeliveryStatus.SENT and message.sent_at is None:
        message.sent_at = utcnow()
    if event.status is DeliveryStatus.FAILED:
        message.error = event.error or "failed"
        conversation = await session.get(Conversation, message.conversation_id)
        if conversation is not None:
            # A reply that never arrived is something a manager must see.
            conversation.needs_attention = True
            await alerts.record_alert(
                session,
                kind=alerts.AlertKind.DELIVERY_FAILED,
                conversation_id=conversation.id,
                event_key=alerts.delivery_failed_event_key(message.id),
                excerpt=message.error,
            )
        log.warning("outbox.delivery_failed", message_id=message.id, error=message.error)
    await session.flush()
    return applied


async def stash_early_status(redis: Redis, event: StatusUpdate) -> None:
    """Keep a status that arrived before the send call recorded the provider id (applied when it is)."""
    payload = json.dumps({"status": event.status.value, "code": event.error_code, "text": event.error_description})
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.rpush(_early_key(event.channel, event.provider_message_id), payload)
            pipe.expire(_early_key(event.channel, event.provider_message_id), EARLY_STATUS_TTL_SECONDS)
            await pipe.execute()
    except RedisError as exc:
        log.warning("outbox.early_status_unavailable", error=type(exc).__name__)


async def pop_early_statuses(redis: Redis, channel: Channel, provider_message_id: str) -> list[StatusUpdate]:
    key = _early_key(channel, provider_message_id)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = await pipe.execute()
    except RedisError:
        return []
    updates = []
    for item in raw:
        data = json.loads(item)
        updates.append(
            StatusUpdate(
                channel=channel,
                provider_message_id=provider_message_id,
                status=DeliveryStatus(data["status"]),
                error_code=data.get("code"),
                error_description=data.get("text"),
            )
        )
    return updates
