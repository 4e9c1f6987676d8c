"""Webhook benchmark: the full inbox path against a bare FastAPI endpoint, same server settings, same run.

    .venv/bin/python bench/bench_webhook.py                       # 4000 requests, 32 connections, 300/s for 10 s
    .venv/bin/python bench/bench_webhook.py --requests 10000 --concurrency 64 --rate 300 --rate-seconds 20

Both apps are served by uvicorn in a child process with identical settings, those of `salesbot serve` (one
process, uvloop and httptools as uvicorn picks them when installed, the access log on with its secrets masked,
salesbot's log format at INFO), and receive the same Wazzup webhook bodies (one text message each, unique
`messageId`, spread over 1000 chats) through keep-alive connections from a small asyncio HTTP/1.1 client:

- bare: `POST /webhooks/wazzup/{secret}` that reads the body and answers `{"ok": true}`;
- full: salesbot's app: secret check, JSON parsing, then the inbox's group commit (`inbox/batcher.py`): the
  webhooks that arrive together share one Redis claim round trip, one PostgreSQL transaction (customers,
  conversations, one multi-row message insert) and its commit, and pipelined burst signals and arq enqueues;
  each request gets `{"ok": true}` only after that commit.

Each server gets two runs: closed loop (`--concurrency` connections sending back to back: throughput), then open
loop at a fixed rate (`--rate` webhooks/s for `--rate-seconds`, each request timed from its scheduled start, so a
stall counts against every request it delays: latency at a realistic load). At the end the messages table must
hold exactly one row per webhook sent to the full app (all have unique ids): every message stored once.

PostgreSQL (embedded, durable: fsync and synchronous commit on) and Redis run on this machine too, as does the
load generator, so absolute numbers are a lower bound; the ratio is the inbox's cost over a do-nothing
endpoint. No worker runs, so turns queue up unprocessed. The two servers are measured in alternating rounds
(`--rounds`, default 3) and each is reported by its median round, so a burst of unrelated load on the machine
skews one round, not the comparison. Each round also reads the server process's CPU time (Linux /proc): CPU
milliseconds per request, which other load on the machine barely moves, unlike throughput and latency. Writes
bench/results/webhook.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

RESULTS = Path(__file__).resolve().parent / "results" / "webhook.json"
SECRET = "bench-secret-5f1d2c3b4a69788796a5b4c3d2e1f0a9"
CHANNEL = "b96a999e-06f5-4cac-8413-ba999993f981"
DATABASE = "salesbot_bench_webhook"
# As `salesbot serve` runs the API (`cmd_serve`): its loop and HTTP parser are uvicorn's "auto" choice, which is
# uvloop and httptools (both come with uvicorn[standard]); named here so a missing one fails the bench.
UVICORN_OPTIONS: dict[str, Any] = {
    "host": "127.0.0.1",
    "loop": "uvloop",
    "http": "httptools",
    "proxy_headers": True,
    "access_log": True,
    "log_config": None,
    "workers": 1,
}


# --- the servers (run in a child process: `bench_webhook.py --serve bare|full --port N`) -----------------------


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/wazzup/{secret}")
    async def webhook(secret: str, request: Request) -> dict[str, bool]:
        await request.body()
        return {"ok": True}

    return app


def serve(kind: str, port: int) -> None:
    import uvicorn

    from salesbot.kit.access_log import install_access_log_masking
    from salesbot.kit.logging import configure_logging

    # The logging `salesbot serve` sets up, for both apps (the full app's factory sets it up again, identically).
    configure_logging("INFO")
    install_access_log_masking()
    if kind == "bare":
        app = bare_app()
    else:
        from salesbot.app import create_app_from_env

        app = create_app_from_env()
    uvicorn.run(app, port=port, **UVICORN_OPTIONS)


# --- the load generator -----------------------------------------------------------------------------------------


def body(chat_index: int) -> bytes:
    message = {
        "messageId": str(uuid.uuid4()),
        "dateTime": datetime.now(UTC).isoformat(),
        "channelId": CHANNEL,
        "chatType": "whatsapp",
        "chatId": f"7990{chat_index:07d}",
        "type": "text",
        "isEcho": False,
        "contact": {"name": "Bench Customer"},
        "text": "Здравствуйте! Сколько стоит доставка в Казань?",
        "status": "inbound",
    }
    return json.dumps({"messages": [message]}).encode()


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    head = (
        f"POST /webhooks/wazzup/{SECRET} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    writer.write(head + payload)
    await writer.drain()
    headers = await reader.readuntil(b"\r\n\r\n")
    status = int(headers.split(b" ", 2)[1])
    length = 0
    for line in headers.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


@dataclass
class Result:
    name: str
    requests: int
    concurrency: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    # HTTP status -> count among the errors (0: no answer: connection refused or reset).
    error_statuses: dict[int, int] = field(default_factory=dict)
    # CPU time (user + system) the server process spent per request: unlike the throughput, barely moved by what
    # else runs on the machine. None where /proc is not available.
    server_cpu_ms: float | None = None


async def load(name: str, port: int, *, requests: int, concurrency: int, warmup: int, pid: int = 0) -> Result:
    counter = iter(range(10**9))

    async def connection(count: int, latencies: list[float], errors: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                payload = body(next(counter) % 1000)
                started = time.perf_counter()
                status = await _request(reader, writer, payload)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(status)
        finally:
            writer.close()

    async def phase(total: int) -> tuple[list[float], list[int], float]:
        latencies: list[float] = []
        errors: list[int] = []
        share, extra = divmod(total, concurrency)
        started = time.perf_counter()
        await asyncio.gather(
            *(connection(share + (1 if i < extra else 0), latencies, errors) for i in range(concurrency))
        )
        return latencies, errors, time.perf_counter() - started

    await phase(warmup)
    cpu_before = cpu_seconds(pid)
    latencies, errors, seconds = await phase(requests)
    cpu_ms = per_request_ms(cpu_before, cpu_seconds(pid), requests)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return Result(
        name=name,
        requests=requests,
        concurrency=concurrency,
        seconds=round(seconds, 3),
        requests_per_second=round(requests / seconds, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 2),
        p90_ms=round(pct(0.90), 2),
        p99_ms=round(pct(0.99), 2),
        max_ms=round(ordered[-1] * 1000, 2),
        errors=len(errors),
        error_statuses=dict(Counter(errors)),
        server_cpu_ms=cpu_ms,
    )


async def fixed_rate(name: str, port: int, *, rate: float, seconds: float) -> Result:
    """Open loop: a request every 1/rate s whatever the answers do, each timed from its scheduled start (so a
    stall counts against every request it delays), over as many keep-alive connections as are busy at once."""
    counter = iter(range(10**9))
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    latencies: list[float] = []
    errors: list[int] = []

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        connection = await asyncio.open_connection("127.0.0.1", port)
        opened.append(connection[1])
        return connection

    async def one(scheduled: float) -> None:
        payload = body(next(counter) % 1000)
        reused = bool(idle)
        try:
            connection = idle.pop() if reused else await connect()
            try:
                status = await _request(*connection, payload)
            except (OSError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                # uvicorn closes a keep-alive connection idle for 5 s (after a stall, the pool holds many): like
                # any HTTP client, send again on a new connection (the webhook is idempotent by its message id).
                connection = await connect()
                status = await _request(*connection, payload)
        except (OSError, asyncio.IncompleteReadError):
            errors.append(0)
            return
        latencies.append(time.perf_counter() - scheduled)
        idle.append(connection)
        if status != 200:
            errors.append(status)

    total = int(rate * seconds)
    started = time.perf_counter()
    tasks = []
    for index in range(total):
        scheduled = started + index / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for writer in opened:
        writer.close()
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return Result(
        name=f"{name}@{rate:g}/s",
        requests=total,
        concurrency=len(opened),
        seconds=round(elapsed, 3),
        requests_per_second=round(total / elapsed, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 2),
        p90_ms=round(pct(0.90), 2),
        p99_ms=round(pct(0.99), 2),
        max_ms=round(ordered[-1] * 1000, 2),
        errors=len(errors),
        error_statuses=dict(Counter(errors)),
    )


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command's closing parenthesis: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request_ms(before: float | None, after: float | None, requests: int) -> float | None:
    return round((after - before) * 1000 / requests, 3) if before is not None and after is not None else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(port: int, process: subprocess.Popen[bytes], *, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            if b" 200 " in line:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def measure(kind: str, env: dict[str, str], args: argparse.Namespace, log: Path) -> tuple[Result, Result]:
    """The closed-loop throughput run, then the fixed-rate run, against one fresh server."""
    port = free_port()
    with log.open("ab") as output:
        # Started once per round, before any measurement: blocking here costs the event loop nothing measured.
        process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, __file__, "--serve", kind, "--port", str(port)], env=env, stdout=output, stderr=output
        )
    try:
        await wait_ready(port, process)
        with client_collector_paused():
            throughput = await load(
                kind, port, requests=args.requests, concurrency=args.concurrency, warmup=args.warmup, pid=process.pid
            )
        started = cpu_seconds(process.pid)
        with client_collector_paused():
            fixed = await fixed_rate(kind, port, rate=args.rate, seconds=args.rate_seconds)
        fixed.server_cpu_ms = per_request_ms(started, cpu_seconds(process.pid), fixed.requests)
        return throughput, fixed
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def client_collector_paused() -> Iterator[None]:
    """No garbage collection in this (client) process while it times requests.

    The client has imported alembic, SQLAlchemy and salesbot's models for the migrations: a full collection of
    that heap paused it for 80-150 ms (seen with `gc.callbacks`), and every request due meanwhile was counted
    late, against whichever server was being measured (p99 at 300/s read 80-120 ms in some rounds for a server
    whose own pauses were 2 ms). A phase's garbage waits for the collection after it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def stored_messages(database_url: str, redis_url: str) -> tuple[int, int]:
    """(messages in PostgreSQL, webhooks in the inbox spool). A request that waited past the inbox's deadline
    (`spool.ACCEPT_DEADLINE_SECONDS`, only when the server is overloaded) is acknowledged from the Redis spool,
    which a worker drains into PostgreSQL later; no worker runs here."""
    from redis.asyncio import Redis
    from sqlalchemy import text

    from salesbot.db import create_engine
    from salesbot.inbox.spool import STREAM_KEY

    engine = create_engine(database_url)
    async with engine.connect() as connection:
        count = int(await connection.scalar(text("SELECT count(*) FROM messages")) or 0)
        distinct = int(await connection.scalar(text("SELECT count(DISTINCT provider_message_id) FROM messages")) or 0)
    await engine.dispose()
    assert count == distinct, "a provider message id stored twice"
    redis = Redis.from_url(redis_url)
    spooled = int(await redis.xlen(STREAM_KEY))
    await redis.aclose()
    return count, spooled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=300.0, help="webhooks/s of the fixed-rate run")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="length of the fixed-rate run")
    parser.add_argument("--serve", choices=["bare", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0

    from salesbot.devstack import EmbeddedPostgres, EmbeddedRedis
    from salesbot.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        root = Path(tmp)
        postgres, redis = EmbeddedPostgres(root), EmbeddedRedis(root, persistent=False)
        postgres.start()
        redis.start()
        try:
            postgres.create_database(DATABASE)
            database_url = postgres.url(DATABASE)
            upgrade(database_url)
            env = {
                **os.environ,
                "SALESBOT_ENV_FILE": "",
                "SALESBOT_ENV": "development",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis.url,
                "WAZZUP_WEBHOOK_SECRET": SECRET,
                "WAZZUP_CHANNEL_ID": CHANNEL,
                "LOG_LEVEL": "INFO",
            }
            log = root / "servers.log"
            load_before = os.getloadavg()
            rounds: dict[str, list[Result]] = {"bare": [], "full": []}
            rate_rounds: dict[str, list[Result]] = {"bare": [], "full": []}
            for _ in range(args.rounds):
                for kind in ("bare", "full"):
                    throughput, fixed = asyncio.run(measure(kind, env, args, log))
                    rounds[kind].append(throughput)
                    rate_rounds[kind].append(fixed)
            stored, spooled = asyncio.run(stored_messages(database_url, redis.url))
        finally:
            redis.stop()
            postgres.stop()

    bare, full = (
        sorted(rounds[kind], key=lambda r: r.requests_per_second)[len(rounds[kind]) // 2] for kind in ("bare", "full")
    )
    # At a fixed rate the throughput is the rate: each side is reported by its median round by p99.
    bare_rate, full_rate = (
        sorted(rate_rounds[kind], key=lambda r: r.p99_ms)[len(rate_rounds[kind]) // 2] for kind in ("bare", "full")
    )
    expected = (args.requests + args.warmup + int(args.rate * args.rate_seconds)) * args.rounds
    ratio = {
        "throughput_full_over_bare": round(full.requests_per_second / bare.requests_per_second, 3),
        "p50_full_over_bare": round(full.p50_ms / bare.p50_ms, 2),
        "p99_full_over_bare": round(full.p99_ms / bare.p99_ms, 2),
    }
    # The server's CPU per request, by its median round (closed loop).
    cpu = {
        kind: statistics.median(r.server_cpu_ms for r in rounds[kind] if r.server_cpu_ms is not None)
        for kind in ("bare", "full")
        if any(r.server_cpu_ms is not None for r in rounds[kind])
    }
    if len(cpu) == 2:
        ratio["server_cpu_full_over_bare"] = round(cpu["full"] / cpu["bare"], 2)
    print(
        f"{'endpoint':<14} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} "
        f"{'cpu ms/req':>10}"
    )
    for result in (bare, full, bare_rate, full_rate):
        cpu_ms = f"{result.server_cpu_ms:.3f}" if result.server_cpu_ms is not None else "-"
        print(
            f"{result.name:<14} {result.requests_per_second:>9.1f} {result.p50_ms:>8.2f} {result.p90_ms:>8.2f} "
            f"{result.p99_ms:>8.2f} {result.max_ms:>8.2f} {result.errors:>7} {cpu_ms:>10}"
        )
    print(f"median of {args.rounds} alternating rounds; load average before the run: {load_before[0]:.2f}")
    if cpu:
        print(f"server CPU per request (median round): {', '.join(f'{k} {v:.3f} ms' for k, v in cpu.items())}")
    print(
        f"full/bare: throughput x{ratio['throughput_full_over_bare']}, p50 x{ratio['p50_full_over_bare']}, "
        f"p99 x{ratio['p99_full_over_bare']}; stored {stored}/{expected} messages once each"
        + (f" (+{spooled} webhooks spooled past the inbox's deadline: overloaded)" if spooled else "")
    )
    print(
        f"full at {args.rate:g} webhooks/s: p50 {full_rate.p50_ms} ms, p99 {full_rate.p99_ms} ms, "
        f"{full_rate.errors} errors (bare: p99 {bare_rate.p99_ms} ms)"
    )
    for kind in ("bare", "full"):
        failed = Counter[int]()
        for result in rounds[kind] + rate_rounds[kind]:
            failed.update(result.error_statuses)
        print(f"{kind}: errors in all rounds {dict(failed) or 0} (status 0: no answer)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "webhook",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_before": [round(value, 2) for value in load_before],
                },
                "server": {k: v for k, v in UVICORN_OPTIONS.items() if k != "host"},
                "load": {
                    "requests": args.requests,
                    "warmup": args.warmup,
                    "concurrency": args.concurrency,
                    "rounds": args.rounds,
                    "rate": args.rate,
                    "rate_seconds": args.rate_seconds,
                },
                "results": [asdict(bare), asdict(full)],
                "rounds": {kind: [asdict(result) for result in results] for kind, results in rounds.items()},
                "fixed_rate": [asdict(bare_rate), asdict(full_rate)],
                "fixed_rate_rounds": {
                    kind: [asdict(result) for result in results] for kind, results in rate_rounds.items()
                },
                "ratio": ratio,
                "stored_messages": stored,
                "spooled_webhooks": spooled,
                "expected_messages": expected,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    errors = sum(result.errors for runs in (rounds, rate_rounds) for results in runs.values() for result in results)
    return 0 if stored + spooled == expected and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
