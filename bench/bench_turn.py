"""Turn overhead: from the end of the debounce window to the provider's send call, p50/p95 (the bot's own cost).

    .venv/bin/python bench/bench_turn.py                  # 60 turns per mode
    .venv/bin/python bench/bench_turn.py --turns 200

The real processes run (`salesbot serve` and one `salesbot worker`) against embedded PostgreSQL (durable) and
Redis, with the fake Wazzup API and the fake OpenAI-compatible LLM of the test suite (tests/fakes) on local ports.
One customer at a time writes one message to a fresh chat; the webhook's answer marks when the message was in;
the window ends DEBOUNCE_SECONDS later; the fake provider records when the reply's send call arrived. The
overhead is the difference: scheduling the turn, reading the burst, the agent (offline responder, or the LLM
at zero latency: a model that answers instantly), writing the outbox, the delivery job and the HTTP call.

Modes: `offline` (LLM_MODEL=offline) and `llm-zero-latency` (LLM_MODEL served by the fake LLM, no delay).
Writes bench/results/turn.json and prints a table. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fakes and the process harness live in the test suite

from tests.system.harness import Inbound, Services, System, SystemConfig, percentile, wazzup_chat  # noqa: E402

from salesbot.models import Channel  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "turn.json"
DEBOUNCE_SECONDS = 0.5
MODES = {"offline": "offline", "llm-zero-latency": "bench-llm"}


async def measure(services: Services, workdir: Path, mode: str, turns: int, warmup: int) -> dict[str, Any]:
    config = SystemConfig(debounce_seconds=DEBOUNCE_SECONDS, debounce_max_seconds=5, llm_model=MODES[mode])
    system = System(services, workdir / mode, config)
    (workdir / mode).mkdir(parents=True, exist_ok=True)
    await system.open()
    try:
        await system.start(workers=1)
        overheads: list[float] = []
        acks: list[float] = []
        for index in range(warmup + turns):
            chat = wazzup_chat(100_000 * (1 + list(MODES).index(mode)) + index)
            ack = await system.webhooks.deliver(Inbound(Channel.WAZZUP, chat, "Hello, do you have laser printers?"))
            if ack.status != 200:
                raise RuntimeError(f"webhook answered {ack.status}")
            await system.replies_reached({chat: 1}, timeout=60)
            sent = system.sent.by_chat[chat][0]
            if index >= warmup:
                overheads.append(sent.at - (ack.acked_at + DEBOUNCE_SECONDS))
                acks.append(ack.acked_at - ack.sent_at)
        models = {row.model for row in await system.db.rows() if row.model}
    finally:
        await system.close()
    return {
        "mode": mode,
        "turns": turns,
        "answered_by": sorted(models),
        "overhead_p50_ms": round(percentile(overheads, 0.5) * 1000, 1),
        "overhead_p95_ms": round(percentile(overheads, 0.95) * 1000, 1),
        "overhead_mean_ms": round(statistics.fmean(overheads) * 1000, 1),
        "overhead_max_ms": round(max(overheads) * 1000, 1),
        "webhook_p50_ms": round(percentile(acks, 0.5) * 1000, 1),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="sb-bench-turn-") as tmp:
        services = Services(Path(tmp) / "services", durable=True)
        services.start()
        try:
            return [asyncio.run(measure(services, Path(tmp), mode, args.turns, args.warmup)) for mode in args.modes]
        finally:
            services.stop()


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args()
    os.environ.setdefault("SALESBOT_ENV_FILE", "")
    results = run(args)
    print(f"{'mode':<18} {'turns':>6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'max ms':>8}  answered by")
    for result in results:
        print(
            f"{result['mode']:<18} {result['turns']:>6} {result['overhead_p50_ms']:>8.1f} "
            f"{result['overhead_p95_ms']:>8.1f} {result['overhead_mean_ms']:>8.1f} {result['overhead_max_ms']:>8.1f}"
            f"  {', '.join(result['answered_by'])}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "turn_overhead",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "debounce_seconds": DEBOUNCE_SECONDS,
                "measured": "provider send call arrival - (webhook acknowledged + DEBOUNCE_SECONDS)",
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
