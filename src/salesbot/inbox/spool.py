"""The inbox's fallback while PostgreSQL is down: verified events wait in a Redis stream, then take the normal path.

Twilio does not redeliver a webhook answered with a 5xx, so answering 503 during a database outage loses the
message. Instead, when the database is *unreachable* (`kit.db_errors`: connection failures only, never a bug or
bad data; or no answer within `ACCEPT_DEADLINE_SECONDS`), the events a provider sent, already verified and parsed,
are appended as one entry to the stream `sb:inbox:spool` and the provider gets its normal 200. If Redis cannot
take them either, the request fails (503) and nothing was acknowledged.

`drain` (a worker cron job, every few seconds) feeds the entries, oldest first, through the very same
`service.accept` a webhook uses, and deletes an entry only after that call returned, i.e. after its commit. A
crash in between replays the entry, and the claim and the unique key `(channel, provider_message_id)` turn the
replay into a no-op, as for any provider redelivery: nothing is lost, nothing is stored twice. A lock keeps
drains from overlapping. An entry that fails for another reason is retried on later drains and, after
`MAX_ATTEMPTS`, moved to the dead-letter stream `sb:inbox:spool:dead` (kept, logged, reported by /readyz).

The stream is bounded at `MAX_EVENTS` entries by refusing (503) rather than by `XADD MAXLEN`, which would trim
the oldest entries: messages that were already acknowledged. The entries hold what the webhook carried (chat
ids, texts) until drained, so Redis must persist (AOF) and never evict (`maxmemory-policy noeviction`), as arq
already requires.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from redis.asyncio import Redis

from salesbot.inbox import service
from salesbot.inbox.batcher import InboxBatcher
from salesbot.kit.db_errors import database_unreachable
from salesbot.kit.logging import get_logger
from salesbot.kit.redis_lock import FlaggingLock
from salesbot.messaging.base import EchoMessage, InboundEvent, InboundMessage, StatusUpdate
from salesbot.models import Channel
from salesbot.resources import Resources

log = get_logger(__name__)

STREAM_KEY = "sb:inbox:spool"
DEAD_LETTER_KEY = "sb:inbox:spool:dead"
ATTEMPTS_KEY = "sb:inbox:spool:attempts"
LOCK_KEY = "sb:inbox:spool:lock"
# A database that neither answers nor refuses (a network partition, a hung server) would hold the webhook until
# asyncpg's 60 s connect timeout, past the provider's own (Twilio: 15 s), which counts as a failed delivery. Past
# this deadline the events are spooled instead; the inbox path takes ~50 ms (p99 ~150 ms under load).
ACCEPT_DEADLINE_SECONDS = 5.0
# About 1 KiB per entry: at most ~100 MB of Redis, hours of traffic for a large business.
MAX_EVENTS = 100_000
# A drain that fails this often for a reason other than an outage gives the entry up to the dead letters.
MAX_ATTEMPTS = 5
DRAIN_BATCH = 100
# A drain stops after this long (the cron's next run continues) and holds its lock somewhat longer: a drainer
# that died frees the stream within a minute, and two drains never overlap while both are alive.
DRAIN_BUDGET_SECONDS = 20.0
LOCK_TTL_MS = 60_000
ENTRY_VERSION = "1"

# Atomic "append unless full": returns the new entry id, or false when the stream holds `ARGV[1]` entries.
_APPEND = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'v', ARGV[2], 'channel', ARGV[3], 'events', ARGV[4])
"""

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "message": TypeAdapter(InboundMessage),
    "echo": TypeAdapter(EchoMessage),
    "status": TypeAdapter(StatusUpdate),
}


class SpoolFullError(Exception):
    """The stream holds `MAX_EVENTS` entries: the request must fail so the provider knows nothing was accepted."""


def _kind(event: InboundEvent) -> str:
    match event:
        case InboundMessage():
            return "message"
        case EchoMessage():
            return "echo"
        case StatusUpdate():
            return "status"


def encode_events(events: Sequence[InboundEvent]) -> str:
    items = []
    for event in events:
        kind = _kind(event)
        items.append({"kind": kind, "event": _ADAPTERS[kind].dump_python(event, mode="json")})
    return json.dumps(items, ensure_ascii=False)


def decode_events(raw: bytes | str) -> list[InboundEvent]:
    """The events of an entry; `ValueError` (incl. pydantic's `ValidationError`) when they cannot be read."""
    items = json.loads(raw)
    if not isinstance(items, list):
        raise ValueError("spooled events must be a JSON list")
    events: list[InboundEvent] = []
    for item in items:
        adapter = _ADAPTERS.get(str(item.get("kind"))) if isinstance(item, dict) else None
        if adapter is None:
            raise ValueError("unknown spooled event kind")
        events.append(adapter.validate_python(item.get("event")))
    return events


async def append(redis: Redis, channel: Channel, events: Sequence[InboundEvent], *, reason: str) -> str:
    """Append one webhook's events to the stream; raises `RedisError` or `SpoolFullError` when it cannot."""
    entry_id = await redis.eval(  # type: ignore[misc]
        _APPEND, 1, STREAM_KEY, str(MAX_EVENTS), ENTRY_VERSION, channel.value, encode_events(events)
    )
    if not entry_id:
        log.error("inbox.spool_full", channel=channel.value, limit=MAX_EVENTS)
        raise SpoolFullError(f"the inbox spool holds {MAX_EVENTS} entries")
    entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    log.warning("inbox.spooled", channel=channel.value, events=len(events), entry=entry, reason=reason)
    return entry


async def accept(
    resources: Resources,
    channel: Channel,
    events: Sequence[InboundEvent],
    *,
    batcher: InboxBatcher | None = None,
) -> service.InboxResult:
    """`service.accept` (through `batcher`, committed with concurrent webhooks, when given), or, when the database
    is unreachable, the events appended to the spool.

    Returns normally only when the events are durable (in PostgreSQL or in the stream): the caller may then
    acknowledge them. Any other failure propagates, including a bug in the database path.
    """
    try:
        # A deadline that fires mid-commit is safe: the spooled copy is then dropped as a duplicate when drained.
        async with asyncio.timeout(ACCEPT_DEADLINE_SECONDS):
            if batcher is not None:
                return await batcher.accept(events)
            return await service.accept(resources, events)
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        reason = type(exc).__name__
    await append(resources.redis, channel, events, reason=reason)
    return service.InboxResult(spooled=True)


# --- draining -------------------------------------------------------------------------------------------------


@dataclass
class DrainReport:
    drained: int = 0  # entries accepted and deleted
    stored: int = 0  # customer messages among them that were new (the rest were duplicates)
    duplicates: int = 0
    retried: int = 0  # entries that failed for another reason and stay for the next drain
    dead: int = 0  # entries moved to the dead letters
    paused: bool = False  # the database is still unreachable
    busy: bool = False  # another drain holds the lock
    backlog: int = 0  # entries left in the stream


@dataclass(frozen=True)
class Backlog:
    pending: int
    dead: int


async def backlog(redis: Redis) -> Backlog:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(STREAM_KEY)
        pipe.xlen(DEAD_LETTER_KEY)
        pending, dead = await pipe.execute()
    return Backlog(pending=int(pending), dead=int(dead))


async def drain(
    resources: Resources, *, budget_seconds: float = DRAIN_BUDGET_SECONDS, batch: int = DRAIN_BATCH
) -> DrainReport:
    """Accept spooled entries, oldest first, until the stream is empty, the database fails or the budget is spent."""
    redis = resources.redis
    if not await redis.xlen(STREAM_KEY):
        return DrainReport()
    lock = FlaggingLock(redis, LOCK_KEY, LOCK_TTL_MS)
    if not (await lock.acquire()).ok:
        return DrainReport(busy=True)
    started = time.monotonic()
    report = DrainReport()
    try:
        await _drain_locked(resources, report, deadline=started + budget_seconds, batch=batch)
    finally:
        await lock.release()
    report.backlog = await redis.xlen(STREAM_KEY)
    if report.drained or report.dead or report.retried:
        log.info(
            "inbox.spool_drained",
            entries=report.drained,
            stored=report.stored,
            duplicates=report.duplicates,
            retried=report.retried,
            dead=report.dead,
            backlog=report.backlog,
            paused=report.paused,
            seconds=round(time.monotonic() - started, 3),
        )
    return report


@dataclass(frozen=True)
class _Entry:
    id: str
    fields: dict[str, bytes]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _drain_locked(resources: Resources, report: DrainReport, *, deadline: float, batch: int) -> None:
    redis = resources.redis
    after = "-"
    while time.monotonic() < deadline:
        entries = await redis.xrange(STREAM_KEY, min=after, max="+", count=batch)
        if not entries:
            return
        for raw_id, raw_fields in entries:
            entry = _Entry(_text(raw_id), {_text(name): value for name, value in raw_fields.items()})
            # Exclusive start: an entry that failed and stays is not read again in this drain.
            after = "(" + entry.id
            if not await _drain_entry(resources, entry, report):
                report.paused = True
                return
            if time.monotonic() >= deadline:
                return


async def _drain_entry(resources: Resources, entry: _Entry, report: DrainReport) -> bool:
    """Accept one entry, then delete it; False when the database is still unreachable (stop draining)."""
    redis = resources.redis
    try:
        events = decode_events(entry.fields["events"])
    except (KeyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        await _dead_letter(redis, entry, error=type(exc).__name__)
        report.dead += 1
        return True
    try:
        result = await service.accept(resources, events)
    except Exception as exc:
        if database_unreachable(exc):
            log.warning("inbox.spool_drain_paused", entry=entry.id, error=type(exc).__name__)
            return False
        attempts = int(await redis.hincrby(ATTEMPTS_KEY, entry.id, 1))  # type: ignore[misc]
        log.exception("inbox.spool_entry_failed", entry=entry.id, attempts=attempts, error=type(exc).__name__)
        if attempts >= MAX_ATTEMPTS:
            await _dead_letter(redis, entry, error=type(exc).__name__)
            report.dead += 1
        else:
            report.retried += 1
        return True
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xdel(STREAM_KEY, entry.id)
        pipe.hdel(ATTEMPTS_KEY, entry.id)
        await pipe.execute()
    report.drained += 1
    report.stored += result.stored
    report.duplicates += result.duplicates
    return True


async def _dead_letter(redis: Redis, entry: _Entry, *, error: str) -> None:
    """Move an entry that cannot be accepted aside (kept for an operator), so it never blocks the stream."""
    fields: dict[str, bytes | str] = {**entry.fields, "entry": entry.id, "error": error}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(DEAD_LETTER_KEY, fields)  # type: ignore[arg-type]
        pipe.xdel(STREAM_KEY, entry.id)
        pipe.hdel(ATTEMPTS_KEY, entry.id)
        await pipe.execute()
    log.error("inbox.spool_dead_lettered", entry=entry.id, error=error)
