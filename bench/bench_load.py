"""Sustained load: how many new conversations per minute 1 API process + 1 worker answer with a p95 reply
overhead under 1 second, with a zero-latency LLM and with a realistic one.

    .venv/bin/python bench/bench_load.py                                   # both cases, default steps
    .venv/bin/python bench/bench_load.py --rates 1200 1800 2400 --llm-rates 600 1000 1400 --step-seconds 25

`salesbot serve` and one `salesbot worker` run against embedded PostgreSQL (durable) and Redis, the fake Wazzup
API and the fake OpenAI-compatible LLM, all on this machine, as does the load generator. New conversations arrive
(Poisson) at increasing rates; each is a customer writing two messages and waiting for the reply (see
loadgen.py). A step is sustained when every conversation was answered and the p95 overhead stayed under 1 s.

1. Zero-latency LLM: the bot's own cost. Reported as conversations a minute and inbound messages a second.
2. Realistic LLM: every request takes `--llm-latency` seconds (2 s) and a turn makes two of them (a tool round:
   the model searches the catalog, then answers), so a turn holds a worker slot for ~4 s. The overhead excludes
   the LLM's own time.

The processes run with the product's default embedder (`--embedding-model`; the database is moved to it with
`salesbot reindex` first): each turn's search embeds what the customer wrote, and the loadgen's customers write
texts of their own.

Each step also reports the worker's and the API's own CPU per answered conversation (Linux /proc): on a shared
machine it moves far less with the other load than throughput does. And the whole machine's: everything that
serves a conversation here (PostgreSQL, Redis, the fakes, the load generator) shares the same cores, so the
machine's cores divided by it bounds the conversations a minute this machine can answer, whatever the worker does.

Each case runs twice in the same run: with arq's default 10 slots (WORKER_MAX_JOBS=10, the baseline) and with
the default WORKER_MAX_JOBS.

Writes bench/results/load.json. Numbers, not pass/fail; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen import ROOT, Conversations, machine
from tests.fakes.llm import Script, ToolCall
from tests.system.harness import Services, System, SystemConfig

from salesbot.settings import EmbeddingSettings, Settings

RESULTS = ROOT / "bench" / "results" / "load.json"
DEBOUNCE_SECONDS = 1.0
P95_BUDGET_MS = 1000.0
MESSAGES_PER_CONVERSATION = 2
# Start-up on a busy shared machine (imports, models) can take over a minute.
STARTUP_TIMEOUT_SECONDS = 240
BASELINE_MAX_JOBS = 10  # arq's default max_jobs: what every worker had before WORKER_MAX_JOBS
LLM_REQUESTS_PER_TURN = 2
# The product's default (EMBEDDING_MODEL unset): every search embeds the customer's words with it.
DEFAULT_EMBEDDER: str = EmbeddingSettings.model_fields["model"].default
# One tool round on every turn: the model searches the catalog for what the customer wrote, then answers.
TOOL_ROUND = Script(
    trigger="",  # every customer message
    steps=[
        [ToolCall("search_products", {"query": "{prompt}"})],
        "We have several office printers in stock; shall I prepare a quotation?",
    ],
)


async def run_case(
    services: Services,
    workdir: Path,
    *,
    rates: list[float],
    step_seconds: float,
    llm_latency: float,
    max_jobs: int,
    embedding_model: str = DEFAULT_EMBEDDER,
) -> dict[str, Any]:
    config = SystemConfig(
        debounce_seconds=DEBOUNCE_SECONDS,
        debounce_max_seconds=5,
        llm_model="bench-llm",
        llm_timeout_seconds=max(5.0, llm_latency * 3),
        # The product's job timeout (and with it the turn budget, 25 s), not the system tests' shorter one.
        job_timeout_seconds=Settings.model_fields["worker_job_timeout_seconds"].default,
        embedding_model=embedding_model,
        extra_env={"WORKER_MAX_JOBS": str(max_jobs)},
    )
    system = System(services, workdir, config)
    llm_seconds = 0.0
    if llm_latency:
        system.llm.latency = llm_latency
        system.llm.scripts.append(TOOL_ROUND)
        llm_seconds = llm_latency * LLM_REQUESTS_PER_TURN
    await system.open()
    load_average = [round(value, 2) for value in os.getloadavg()]  # the shared machine's load, before the case
    steps: list[dict[str, Any]] = []
    label = f"llm {llm_latency:.0f}s x{LLM_REQUESTS_PER_TURN}" if llm_latency else "llm 0s"
    try:
        await system.start(workers=1, timeout=STARTUP_TIMEOUT_SECONDS)
        conversations = Conversations(system, DEBOUNCE_SECONDS, llm_seconds=llm_seconds)
        processes = {"worker": system.workers[0], "api": system.api}
        await conversations.step(30, 10)  # warm-up
        over_budget = 0
        for rate in rates:
            calls_before = len(system.llm.calls)
            cpu_before = {kind: process_cpu_seconds(process.pid) for kind, process in processes.items()}
            cpu_before["machine"] = machine_cpu_seconds()
            summary = (await conversations.step(rate, step_seconds)).summary()
            answered = summary["conversations_answered"]
            cpu_now = {kind: process_cpu_seconds(process.pid) for kind, process in processes.items()}
            # Every CPU of the machine: the API and the worker, and PostgreSQL, Redis, the fakes and the load
            # generator, which share the same cores (and any other load on a shared machine).
            cpu_now["machine"] = machine_cpu_seconds()
            for kind, now in cpu_now.items():
                # CPU per answered conversation: on a shared machine, steadier than throughput.
                before = cpu_before[kind]
                summary[f"{kind}_cpu_ms_per_answer"] = (
                    round((now - before) * 1000 / answered, 1)
                    if now is not None and before is not None and answered
                    else None
                )
            summary["sustained"] = summary["unanswered_after_grace"] == 0 and (
                summary["reply_overhead_p95_ms"] <= P95_BUDGET_MS
            )
            summary["inbound_messages_per_second"] = round(
                summary["answered_per_minute"] * MESSAGES_PER_CONVERSATION / 60, 1
            )
            summary["llm_requests_per_answer"] = round((len(system.llm.calls) - calls_before) / max(answered, 1), 2)
            steps.append(summary)
            print(
                f"[{label}, WORKER_MAX_JOBS={max_jobs:>3}] {rate:>6.0f}/min offered  "
                f"{summary['answered_per_minute']:>7.1f}/min answered "
                f"({summary['inbound_messages_per_second']:>5.1f} msg/s)  "
                f"p50 {summary['reply_overhead_p50_ms']:>7.1f} ms  p95 {summary['reply_overhead_p95_ms']:>8.1f} ms  "
                f"unanswered {summary['unanswered_after_grace']}  "
                f"CPU/answer: worker {summary['worker_cpu_ms_per_answer']} ms, "
                f"api {summary['api_cpu_ms_per_answer']} ms, machine {summary['machine_cpu_ms_per_answer']} ms",
                flush=True,
            )
            over_budget = 0 if summary["sustained"] else over_budget + 1
            if over_budget >= 2:
                break  # saturated
    finally:
        await system.close()
    sustained = [step["answered_per_minute"] for step in steps if step["sustained"]]
    capacity = max(sustained, default=0.0)
    return {
        "worker_max_jobs": max_jobs,
        "llm_latency_seconds": llm_latency,
        "llm_requests_per_turn": LLM_REQUESTS_PER_TURN if llm_latency else 1,
        "sustained_conversations_per_minute": capacity,
        "sustained_inbound_messages_per_second": round(capacity * MESSAGES_PER_CONVERSATION / 60, 1),
        "load_average_before": load_average,
        "steps": steps,
    }


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere or when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine so far, all cores (Linux /proc/stat: user, nice, system, irq and
    softirq; idle, iowait and steal excluded); None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[600, 1200, 1800], help="zero-latency case")
    parser.add_argument("--llm-rates", type=float, nargs="+", default=[600, 1000, 1400], help="realistic case")
    parser.add_argument("--step-seconds", type=float, default=20)
    parser.add_argument("--llm-latency", type=float, default=2.0, help="seconds per LLM request, realistic case")
    parser.add_argument("--skip-zero-latency", action="store_true")
    parser.add_argument("--skip-realistic", action="store_true", help="only the zero-latency case")
    parser.add_argument(
        "--embedding-model",
        default=DEFAULT_EMBEDDER,
        help=f"EMBEDDING_MODEL of the processes (default: the product's, {DEFAULT_EMBEDDER}; 'offline': n-grams)",
    )
    args = parser.parse_args()
    default_max_jobs = Settings.model_fields["worker_max_jobs"].default
    cases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sb-bench-load-") as tmp:
        services = Services(Path(tmp) / "services", durable=True)
        services.start()
        plan = [
            (f"llm_{args.llm_latency:g}s_tool_round_baseline", args.llm_rates, args.llm_latency, BASELINE_MAX_JOBS),
            (f"llm_{args.llm_latency:g}s_tool_round_default", args.llm_rates, args.llm_latency, default_max_jobs),
        ]
        if args.skip_realistic:
            plan = []
        if not args.skip_zero_latency:
            plan[:0] = [
                ("llm_zero_latency_baseline", args.rates, 0.0, BASELINE_MAX_JOBS),
                ("llm_zero_latency_default", args.rates, 0.0, default_max_jobs),
            ]
        try:
            for index, (name, rates, latency, max_jobs) in enumerate(plan):
                workdir = Path(tmp) / f"case-{index}"
                workdir.mkdir()
                cases[name] = asyncio.run(
                    run_case(
                        services,
                        workdir,
                        rates=rates,
                        step_seconds=args.step_seconds,
                        llm_latency=latency,
                        max_jobs=max_jobs,
                        embedding_model=args.embedding_model,
                    )
                )
        finally:
            services.stop()
    print(f"\n{'case':<34} {'WORKER_MAX_JOBS':>15} {'sustained conv/min':>19} {'msg/s':>7}")
    for name, case in cases.items():
        print(
            f"{name:<34} {case['worker_max_jobs']:>15} {case['sustained_conversations_per_minute']:>19.0f} "
            f"{case['sustained_inbound_messages_per_second']:>7.1f}"
        )
    baseline = cases[plan[-2][0]]["sustained_conversations_per_minute"]
    default = cases[plan[-1][0]]["sustained_conversations_per_minute"]
    if baseline and not args.skip_realistic:
        print(f"realistic LLM: sustained default / baseline = {default / baseline:.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "sustained_load",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "note": "shared 2-CPU machine (other sessions running): compare cases within this run",
                "processes": {"api": 1, "worker": 1},
                "embedding_model": args.embedding_model,
                "debounce_seconds": DEBOUNCE_SECONDS,
                "step_seconds": args.step_seconds,
                "conversation": "a new customer writes 2 messages (one burst) and gets 1 reply",
                "overhead": "reply send call - (last webhook ack + debounce) - the LLM's own time",
                "p95_budget_ms": P95_BUDGET_MS,
                "cases": cases,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
