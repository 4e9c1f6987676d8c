"""What fleet-wide metrics cost: recording a webhook's samples and rendering a scrape, against a bare Redis round trip.

    .venv/bin/python bench/bench_metrics.py --calls 5000

Against an embedded Redis on a unix socket (as in `salesbot dev`): the time of one `PING` (the baseline: the least
any Redis command costs), of one webhook's recording (`record_webhook`: two counters added to the process's
buffer) and of one turn's (`record_turn`: a counter and two histograms), of a flush that writes one webhook's
recording (one pipelined round trip, what every recording cost before the buffer), measured in the same run; then
the time to read and render `/metrics` for a fleet that has recorded many label combinations. Writes
bench/results/metrics.json. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from salesbot.devstack import EmbeddedRedis
from salesbot.kit import metrics as fleet
from salesbot.observability import collector
from salesbot.observability import metrics as catalog

RESULTS = Path(__file__).parent / "results" / "metrics.json"


@dataclass
class _Webhook:
    stored: int = 1
    duplicates: int = 0
    spooled: bool = False


@dataclass
class _Turn:
    result: str = "replied"
    handoff: bool = False
    debounce_seconds: float | None = 3.2


async def timed(calls: int, action: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    for _ in range(min(200, calls)):
        await action()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {
        "mean_us": round(statistics.fmean(samples) * 1e6, 1),
        "p50_us": round(samples[len(samples) // 2] * 1e6, 1),
        "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6, 1),
    }


async def measure(url: str, calls: int, series: int) -> dict[str, Any]:
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
        fleet.bind(redis)
        ping = await timed(calls, redis.ping)
        webhook = await timed(calls, lambda: catalog.record_webhook("wazzup", _Webhook()))
        turn = await timed(calls, lambda: catalog.record_turn(_Turn(), 1.7))
        await fleet.flush()

        async def flushed_webhook() -> None:
            await catalog.record_webhook("wazzup", _Webhook())
            await fleet.flush()

        flush = await timed(calls, flushed_webhook)
        # A large fleet's label combinations: every provider/outcome, models and turn results.
        for index in range(series):
            await fleet.inc(catalog.LLM_FAILURES, model=f"model-{index}")
            await fleet.observe(catalog.DELIVERY_SECONDS, index % 30, provider=f"provider-{index % 7}")
        await fleet.flush()
        fields = await redis.hlen(fleet.KEY)
        scrape = collector.Scrape()
        render_samples = []
        for _ in range(20):
            started = time.perf_counter()
            scrape.fleet = await fleet.snapshot(redis)
            body = collector.render(scrape)
            render_samples.append(time.perf_counter() - started)
        fleet.bind(None)
        return {
            "ping": ping,
            "record_webhook": webhook,
            "record_turn": turn,
            "flush_webhook": flush,
            "webhook_vs_ping": round(webhook["p50_us"] / ping["p50_us"], 2),
            "flush_vs_ping": round(flush["p50_us"] / ping["p50_us"], 2),
            "scrape": {
                "redis_fields": fields,
                "bytes": len(body),
                "p50_ms": round(statistics.median(render_samples) * 1000, 2),
            },
        }
    finally:
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--series", type=int, default=200, help="label combinations recorded before the scrape")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sb-bench-metrics-") as tmp:
        server = EmbeddedRedis(Path(tmp), persistent=False)
        server.start()
        try:
            result = asyncio.run(measure(server.url, args.calls, args.series))
        finally:
            server.stop()
    print(f"{'':<16}{'p50 us':>10}{'p99 us':>10}")
    for name in ("ping", "record_webhook", "record_turn", "flush_webhook"):
        print(f"{name:<16}{result[name]['p50_us']:>10}{result[name]['p99_us']:>10}")
    print(f"webhook recording = {result['webhook_vs_ping']}x a bare PING; a flush = {result['flush_vs_ping']}x")
    scrape = result["scrape"]
    print(f"scrape of {scrape['redis_fields']} Redis fields: {scrape['p50_ms']} ms, {scrape['bytes']} bytes")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "metrics",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "calls": args.calls,
                "series": args.series,
                **result,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
