"""Redis commands a second from one busy process: redis-py's default asyncio pool against salesbot's client.

    .venv/bin/python bench/bench_redis_pool.py --tasks 100 --commands 20 --rounds 3

An embedded Redis on a unix socket (as in `salesbot dev`). `--tasks` coroutines each send `--commands` GETs at once,
while `--busy` other coroutines keep the event loop working (each burns 0.5 ms of CPU per loop iteration: turns
building prompts, webhooks parsing JSON). The baseline is what arq's `create_pool` builds (redis-py's
`ConnectionPool`, which checks each connection it hands out under its lock, waiting one loop iteration per
command); salesbot's `kit.redis_client` uses a `BlockingConnectionPool`, which checks outside the lock. Rounds
alternate the two; medians are printed. Writes bench/results/redis_pool.json. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis

from salesbot.devstack import EmbeddedRedis
from salesbot.kit import redis_client

RESULTS = Path(__file__).parent / "results" / "redis_pool.json"
BUSY_SLICE_SECONDS = 0.0005


async def _busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < BUSY_SLICE_SECONDS:
            pass
        await asyncio.sleep(0)


async def _round(redis: ArqRedis, *, tasks: int, commands: int, busy: int) -> dict[str, float]:
    stop = asyncio.Event()
    burners = [asyncio.create_task(_busy(stop)) for _ in range(busy)]
    latencies: list[float] = []

    async def client(index: int) -> None:
        for _ in range(commands):
            started = time.perf_counter()
            await redis.get(f"bench:{index}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(index) for index in range(tasks)))
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*burners)
    latencies.sort()
    return {
        "commands_per_second": round(len(latencies) / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


async def _measure(url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    clients = {
        "arq create_pool (redis-py ConnectionPool)": lambda: ArqRedis.from_url(url),
        "salesbot kit.redis_client (BlockingConnectionPool)": lambda: redis_client.client(url),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    for _ in range(args.rounds):
        for name, make in clients.items():
            redis = make()
            try:
                await redis.ping()
                rounds[name].append(await _round(redis, tasks=args.tasks, commands=args.commands, busy=args.busy))
            finally:
                await redis.aclose(close_connection_pool=True)
    return {
        name: {key: statistics.median(result[key] for result in results) for key in results[0]}
        for name, results in rounds.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 4], help="busy coroutines on the loop")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_average = [round(value, 2) for value in os.getloadavg()]
    cases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sb-bench-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp), persistent=False)
        server.start()
        try:
            for busy in args.busy:
                measured = asyncio.run(_measure(server.url, argparse.Namespace(**{**vars(args), "busy": busy})))
                cases[f"busy_{busy}"] = measured
                baseline, ours = measured.values()
                ratio = ours["commands_per_second"] / max(baseline["commands_per_second"], 1)
                print(f"{busy} busy coroutine(s) on the loop, {args.tasks} x {args.commands} GETs:")
                for name, numbers in measured.items():
                    print(
                        f"  {name:<52} {numbers['commands_per_second']:>8.0f} cmd/s  "
                        f"p50 {numbers['p50_ms']:>8.2f} ms  p99 {numbers['p99_ms']:>8.2f} ms"
                    )
                print(f"  salesbot / baseline throughput: x{ratio:.1f}")
        finally:
            server.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "redis_pool",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": "bench/bench_redis_pool.py "
                f"--tasks {args.tasks} --commands {args.commands} --rounds {args.rounds}",
                "load_average_before": load_average,
                "cases": cases,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
