"""Fleet-wide counters and histograms kept in Redis, so one scrape of any API process sees every process's numbers.

Production runs several API processes and workers on several hosts; an in-process `prometheus_client` registry
would show each process only its own share. Instead the increments go to one Redis hash (`sb:metrics`) as
`HINCRBY`/`HINCRBYFLOAT`, and the API's `/metrics` collector reads the hash back (`snapshot`) and renders the
families (see `salesbot.observability.collector`).

Recording is buffered: `record` only adds to the process's pending increments (summed per field), and one flush
writes them all in one pipelined round trip at most `FLUSH_SECONDS` later. A round trip per recording was a good
part of a webhook's cost (the inbox records every request); a flush costs the same whether it carries one
webhook or a thousand. Nothing is counted twice or left out: `flush` writes now, `snapshot` flushes first (a
process reads back everything it recorded itself), and `open_resources` flushes on the way out, so a graceful
shutdown loses nothing; a crash loses at most the last `FLUSH_SECONDS`, as another process's scrape may lag by
as much.

Recording never fails or delays the caller; a flush gives up after `RECORD_TIMEOUT_SECONDS`, logs the Redis error
at debug level and drops those increments, which a monitoring counter may afford. Recording is a no-op until a
process binds its Redis pool (`bind`, done by `salesbot.resources.open_resources`), so code paths without
resources (unit tests, CLI commands) need no plumbing.

Every metric is declared once, as a module-level `Counter` or `Histogram` (the catalog is
`salesbot.observability.metrics`); label values must come from small closed sets (providers, outcomes, model
names), never from ids or customer data.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.kit.logging import get_logger

log = get_logger(__name__)

KEY = "sb:metrics"
RECORD_TIMEOUT_SECONDS = 0.5
# The longest a recorded increment waits in the process before it is written to Redis.
FLUSH_SECONDS = 1.0
# Latencies in seconds, from the webhook's milliseconds to a turn that spends its whole budget.
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120)


class _Buffer:
    """The increments a process recorded for one Redis and has not written yet, and the flush that will."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pending: dict[str, float] = {}
        self._timer: asyncio.Task[None] | None = None
        # The event loop the increments were recorded on: the Redis client works on that loop only.
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, increments: Increments) -> None:
        for key, amount in increments:
            self.pending[key] = self.pending.get(key, 0) + amount
        _unflushed.add(self)
        loop = self.loop = asyncio.get_running_loop()
        timer = self._timer
        # A timer of a loop that closed (a CLI command's `asyncio.run`) never runs: start one on this loop.
        if timer is None or timer.done() or timer.get_loop() is not loop:
            self._timer = loop.create_task(self._flush_later(), name="metrics.flush")

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        self._timer = None
        await self.flush()

    def cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task() and not timer.done():
            timer.cancel()

    async def flush(self) -> None:
        increments, self.pending = self.pending, {}
        _unflushed.discard(self)
        if not increments:
            return
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_SECONDS):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, amount in increments.items():
                        if float(amount).is_integer():
                            pipe.hincrby(KEY, key, int(amount))
                        else:
                            pipe.hincrbyfloat(KEY, key, float(amount))
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("metrics.record_failed", error=type(exc).__name__, fields=len(increments))


_sink: _Buffer | None = None
# Buffers holding increments not yet written (the bound one, and any a `bind` replaced meanwhile).
_unflushed: set[_Buffer] = set()


@dataclass(frozen=True)
class Counter:
    name: str  # without the `_total` suffix, which the exposition adds
    help: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS


def bind(redis: Redis | None) -> Redis | None:
    """Record into `redis` from now on (None: stop recording); returns the previous binding to restore.

    What was recorded for the previous binding is still written to its Redis (by its timer, or `flush`)."""
    global _sink
    previous = _sink
    if redis is None:
        _sink = None
    elif previous is None or previous.redis is not redis:
        _sink = next((buffer for buffer in _unflushed if buffer.redis is redis), None) or _Buffer(redis)
    return previous.redis if previous is not None else None


@contextmanager
def bound(redis: Redis) -> Iterator[None]:
    previous = bind(redis)
    try:
        yield
    finally:
        # Only undo our own binding: a later `bind` by another owner stays.
        if _sink is not None and _sink.redis is redis:
            bind(previous)


def _field(name: str, labels: tuple[str, ...], values: dict[str, str], suffix: str) -> str:
    if set(values) != set(labels):
        raise ValueError(f"{name} takes the labels {labels}, got {sorted(values)}")
    return _encoded_field(name, tuple(str(values[label]) for label in labels), suffix)


# Label sets repeat (every webhook counts the same few fields): encoded once, not per increment.
@functools.lru_cache(maxsize=4096)
def _encoded_field(name: str, label_values: tuple[str, ...], suffix: str) -> str:
    return json.dumps([name, list(label_values), suffix], separators=(",", ":"))


Increments = list[tuple[str, float]]


def count(counter: Counter, amount: float = 1, **labels: str) -> Increments:
    """What `inc` writes, to be combined with others into one `record` (one round trip)."""
    return [(_field(counter.name, counter.labels, labels, "total"), amount)]


def sample(histogram: Histogram, value: float, **labels: str) -> Increments:
    """What `observe` writes (the observation's bucket, the count and the sum), for `record`."""
    if math.isnan(value):
        return []
    index = bisect.bisect_left(histogram.buckets, value)
    bucket = repr(float(histogram.buckets[index])) if index < len(histogram.buckets) else "+Inf"
    return [
        (_field(histogram.name, histogram.labels, labels, bucket), 1),
        (_field(histogram.name, histogram.labels, labels, "count"), 1),
        (_field(histogram.name, histogram.labels, labels, "sum"), value),
    ]


async def inc(counter: Counter, amount: float = 1, **labels: str) -> None:
    """Add `amount` to the counter (fleet-wide)."""
    await record(count(counter, amount, **labels))


async def observe(histogram: Histogram, value: float, **labels: str) -> None:
    """Count one observation of `value` into its bucket (stored per bucket; cumulated when read)."""
    await record(sample(histogram, value, **labels))


async def record(*parts: Increments) -> None:
    """Add `count`/`sample` results to the process's pending increments (written within `FLUSH_SECONDS`)."""
    buffer = _sink
    if buffer is None:
        return
    increments = [item for part in parts for item in part]
    if increments:
        buffer.add(increments)


async def flush(redis: Redis | None = None) -> None:
    """Write the increments recorded so far on this event loop (into `redis` only, if given), now: a scrape, a
    graceful shutdown. Never raises for Redis trouble.

    Increments recorded on another, still running loop are left to its own timer (a Redis client cannot be used
    across loops); those of a loop that closed cannot be written any more and are dropped."""
    loop = asyncio.get_running_loop()
    for buffer in [b for b in _unflushed if b.loop is not None and b.loop.is_closed()]:
        buffer.pending = {}
        _unflushed.discard(buffer)
    buffers = [b for b in _unflushed if b.loop is loop and (redis is None or b.redis is redis)]
    for buffer in buffers:
        buffer.cancel_timer()
    await asyncio.gather(*(buffer.flush() for buffer in buffers))


# --- reading ----------------------------------------------------------------------------------------------------


@dataclass
class HistogramSeries:
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> count in that bucket only
    count: float = 0
    sum: float = 0

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        """(le, cumulative count) for every declared bound and +Inf, as the exposition format wants them."""
        rows: list[tuple[str, float]] = []
        running = 0.0
        for bound in bounds:
            running += self.buckets.get(float(bound), 0)
            rows.append((repr(float(bound)), running))
        rows.append(("+Inf", self.count))
        return rows


@dataclass
class Snapshot:
    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)
    histograms: dict[str, dict[tuple[str, ...], HistogramSeries]] = field(default_factory=dict)


async def snapshot(redis: Redis) -> Snapshot:
    """Everything recorded so far by every process (this one's pending increments flushed first); unreadable
    fields (another version's) are skipped."""
    await flush()
    raw: dict[bytes | str, bytes | str] = await redis.hgetall(KEY)  # type: ignore[misc]
    result = Snapshot()
    for raw_key, raw_value in raw.items():
        try:
            name, values, suffix = json.loads(raw_key)
            value = float(raw_value)
            labels = tuple(str(v) for v in values)
        except (ValueError, TypeError):
            continue
        if suffix == "total":
            result.counters.setdefault(name, {})[labels] = value
            continue
        series = result.histograms.setdefault(name, {}).setdefault(labels, HistogramSeries())
        if suffix == "count":
            series.count = value
        elif suffix == "sum":
            series.sum = value
        elif suffix != "+Inf":
            try:
                series.buckets[float(suffix)] = value
            except ValueError:
                continue
    return result
