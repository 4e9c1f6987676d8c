"""`/metrics`: the fleet's numbers in the Prometheus text format, the same whichever API process is scraped.

Two sources, read when Prometheus asks (`gather`), then rendered by a `prometheus_client` collector:
- the counters and histograms every API process and worker records in Redis (`salesbot.kit.metrics`, catalog
  in `salesbot.observability.metrics`);
- gauges of state PostgreSQL and Redis already hold: arq queue depths, the inbox spool, outbound messages by
  delivery status (pending = the outbox backlog), conversations by status and owner (owner=human: handed over),
  and LLM requests, tokens and cost per model summed from `llm_usage` (every generation, discarded drafts too).

A source that fails is reported by `salesbot_metrics_source_up{source=...} 0` and left out; the scrape itself
answers 200 with what the other source gave.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from salesbot import queues
from salesbot.inbox import spool
from salesbot.kit import metrics as fleet
from salesbot.kit.logging import get_logger
from salesbot.observability import repository
from salesbot.observability.metrics import COUNTERS, HISTOGRAMS
from salesbot.resources import Resources

log = get_logger(__name__)

# The arq queues the workers consume (a worker started with another queue name adds it here).
QUEUE_NAMES: tuple[str, ...] = tuple(queues.BY_NAME.values())


@dataclass
class Scrape:
    fleet: fleet.Snapshot = field(default_factory=fleet.Snapshot)
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # queue -> (ready, deferred)
    spool_pending: int | None = None
    spool_dead: int | None = None
    outbound: dict[str, int] = field(default_factory=dict)
    conversations: dict[tuple[str, str], int] = field(default_factory=dict)
    llm: list[repository.ModelUsage] = field(default_factory=list)
    up: dict[str, bool] = field(default_factory=dict)


async def gather(resources: Resources) -> Scrape:
    scrape = Scrape()
    try:
        await _from_redis(resources.redis, scrape)
        scrape.up["redis"] = True
    except Exception as exc:
        scrape.up["redis"] = False
        log.warning("metrics.source_failed", source="redis", error=type(exc).__name__, detail=str(exc)[:300])
    try:
        async with resources.sessionmaker() as session:
            scrape.outbound = await repository.outbound_by_status(session)
            scrape.conversations = await repository.conversations_by_status_and_owner(session)
            scrape.llm = await repository.llm_usage_by_model(session)
        scrape.up["database"] = True
    except Exception as exc:
        scrape.up["database"] = False
        log.warning("metrics.source_failed", source="database", error=type(exc).__name__, detail=str(exc)[:300])
    return scrape


async def _from_redis(redis: Redis, scrape: Scrape) -> None:
    scrape.fleet = await fleet.snapshot(redis)
    now_ms = int(time.time() * 1000)
    for queue in QUEUE_NAMES:
        # arq scores a job by the time it is due: those due by now wait for a worker, the rest are deferred.
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcount(queue, "-inf", now_ms)
            pipe.zcard(queue)
            ready, total = await pipe.execute()
        scrape.queues[queue] = (int(ready), int(total) - int(ready))
    backlog = await spool.backlog(redis)
    scrape.spool_pending, scrape.spool_dead = backlog.pending, backlog.dead


class FleetCollector(Collector):
    def __init__(self, scrape: Scrape) -> None:
        self._scrape = scrape

    def collect(self) -> Iterator[Metric]:
        scrape = self._scrape
        yield from self._recorded(scrape.fleet)
        queues = GaugeMetricFamily(
            "salesbot_queue_jobs",
            "Jobs in an arq queue: ready (due, waiting for a worker) or deferred.",
            labels=["queue", "state"],
        )
        for queue, (ready, deferred) in scrape.queues.items():
            queues.add_metric([queue, "ready"], ready)
            queues.add_metric([queue, "deferred"], deferred)
        yield queues
        spooled = GaugeMetricFamily(
            "salesbot_inbox_spool_entries",
            "Webhooks waiting in the Redis spool for the database (pending) or given up on (dead).",
            labels=["state"],
        )
        if scrape.spool_pending is not None and scrape.spool_dead is not None:
            spooled.add_metric(["pending"], scrape.spool_pending)
            spooled.add_metric(["dead"], scrape.spool_dead)
        yield spooled
        outbound = GaugeMetricFamily(
            "salesbot_outbound_messages",
            "Outbound messages by delivery status (pending: the outbox backlog).",
            labels=["status"],
        )
        for status, count in sorted(scrape.outbound.items()):
            outbound.add_metric([status], count)
        yield outbound
        conversations = GaugeMetricFamily(
            "salesbot_conversations",
            "Conversations by status and owner (owner=human: handed to a manager).",
            labels=["status", "owner"],
        )
        for (status, owner), count in sorted(scrape.conversations.items()):
            conversations.add_metric([status, owner], count)
        yield conversations
        yield from self._llm(scrape.llm)
        up = GaugeMetricFamily(
            "salesbot_metrics_source_up", "Whether this scrape could read a source.", labels=["source"]
        )
        for source, ok in sorted(scrape.up.items()):
            up.add_metric([source], 1 if ok else 0)
        yield up

    @staticmethod
    def _recorded(snapshot: fleet.Snapshot) -> Iterator[Metric]:
        for counter in COUNTERS:
            family = CounterMetricFamily(counter.name, counter.help, labels=list(counter.labels))
            for labels, value in sorted(snapshot.counters.get(counter.name, {}).items()):
                family.add_metric(list(labels), value)
            yield family
        for histogram in HISTOGRAMS:
            hist = HistogramMetricFamily(histogram.name, histogram.help, labels=list(histogram.labels))
            for labels, series in sorted(snapshot.histograms.get(histogram.name, {}).items()):
                hist.add_metric(list(labels), series.cumulative(histogram.buckets), sum_value=series.sum)
            yield hist

    @staticmethod
    def _llm(usage: list[repository.ModelUsage]) -> Iterator[Metric]:
        requests = CounterMetricFamily("salesbot_llm_requests", "LLM requests per model (llm_usage).", labels=["model"])
        tokens = CounterMetricFamily(
            "salesbot_llm_tokens", "LLM tokens per model and direction (llm_usage).", labels=["model", "direction"]
        )
        cost = CounterMetricFamily(
            "salesbot_llm_cost", "LLM cost per model, as recorded in llm_usage.cost.", labels=["model"]
        )
        for row in usage:
            requests.add_metric([row.model], row.requests)
            tokens.add_metric([row.model, "in"], row.tokens_in)
            tokens.add_metric([row.model, "out"], row.tokens_out)
            cost.add_metric([row.model], float(row.cost))
        yield requests
        yield tokens
        yield cost


def render(scrape: Scrape) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(scrape))
    return generate_latest(registry)
