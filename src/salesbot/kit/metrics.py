"""Fleet-wide counters and histograms kept in Redis, so one scrape of any API process sees every process's numbers.

Production runs several API processes and workers on several hosts; an in-process `prometheus_client` registry
would show each process only its own share. Instead each event is a pipelined `HINCRBY`/`HINCRBYFLOAT` on one
Redis hash (`sb:metrics`), one round trip per recording, and the API's `/metrics` collector reads the hash back
(`snapshot`) and renders the families (see `salesbot.observability.collector`).

Recording never fails or delays the caller beyond `RECORD_TIMEOUT_SECONDS`: a Redis error is logged at debug
level and the sample is lost, which a monitoring counter may afford. Recording is a no-op until a process binds
its Redis pool (`bind`, done by `salesbot.resources.open_resources`), so code paths without resources (unit
tests, CLI commands) need no plumbing.

Every metric is declared once, as a module-level `Counter` or `Histogram` (the catalog is
`salesbot.observability.metrics`); label values must come from small closed sets (providers, outcomes, model
names), never from ids or customer data.
"""

from __future__ import annotations

import asyncio
import bisect
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
# Latencies in seconds, from the webhook's milliseconds to a turn that spends its whole budget.
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120)

_sink: Redis | None = None


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
    """Record into `redis` from now on (None: stop recording); returns the previous binding to restore."""
    global _sink
    previous, _sink = _sink, redis
    return previous


@contextmanager
def bound(redis: Redis) -> Iterator[None]:
    previous = bind(redis)
    try:
        yield
    finally:
        # Only undo our own binding: a later `bind` by another owner stays.
        if _sink is redis:
            bind(previous)


def _field(name: str, labels: tuple[str, ...], values: dict[str, str], suffix: str) -> str:
    if set(values) != set(labels):
        raise ValueError(f"{name} takes the labels {labels}, got {sorted(values)}")
    return json.dumps([name, [str(values[label]) for label in labels], suffix], separators=(",", ":"))


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
    """Write `count`/`sample` results in one pipelined round trip; never raises for Redis trouble."""
    increments = [item for part in parts for item in part]
    redis = _sink
    if redis is None or not increments:
        return
    try:
        async with asyncio.timeout(RECORD_TIMEOUT_SECONDS):
            async with redis.pipeline(transaction=False) as pipe:
                for key, amount in increments:
                    if float(amount).is_integer():
                        pipe.hincrby(KEY, key, int(amount))
                    else:
                        pipe.hincrbyfloat(KEY, key, float(amount))
                await pipe.execute()
    except (RedisError, OSError, TimeoutError) as exc:
        log.debug("metrics.record_failed", error=type(exc).__name__)


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
    """Everything recorded so far by every process; unreadable fields (another version's) are skipped."""
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
