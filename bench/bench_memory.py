"""Memory: resident set size (RSS) of the API process and the worker, idle and under load.

    .venv/bin/python bench/bench_memory.py
    .venv/bin/python bench/bench_memory.py --rate 600 --seconds 60

`salesbot serve` and one `salesbot worker` run as in production (embedded PostgreSQL and Redis, fake provider
and LLM on local ports; see loadgen.py). RSS is sampled every 0.5 s: idle after start-up, during a stream of new
conversations at `--rate` per minute, and idle again afterwards (what stays allocated).

Embedding models: the default (Google's Universal Sentence Encoder, installed with salesbot) and the offline
embedder always; BGE-M3 too when a local copy exists (EMBEDDING_MODEL_PATH, or the fastembed cache), since these
machines cannot download it. Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from loadgen import ROOT, Conversations, machine
from tests.system.harness import SalesbotProcess, Services, System, SystemConfig

from salesbot.settings import EmbeddingSettings

RESULTS = ROOT / "bench" / "results" / "memory.json"
DEBOUNCE_SECONDS = 1.0
MIB = 1024 * 1024
# Start-up on a busy shared machine (imports, the embedding model) can take over a minute.
STARTUP_TIMEOUT_SECONDS = 240


def local_bge_m3() -> str | None:
    """A local BGE-M3 folder (never downloaded here): EMBEDDING_MODEL_PATH, else salesbot's model cache."""
    from salesbot.knowledge.embeddings import fastembed_cache_dir
    from salesbot.settings import Settings

    configured = os.environ.get("EMBEDDING_MODEL_PATH")
    if configured and Path(configured).is_dir():
        return configured
    for cache in (os.environ.get("FASTEMBED_CACHE_PATH"), fastembed_cache_dir(Settings())):
        if cache and Path(cache).is_dir():
            for found in Path(cache).rglob("*bge-m3*"):
                if found.is_dir() and any(found.rglob("*.onnx")):
                    return str(found)
    return None


def rss_mib(process: SalesbotProcess) -> float:
    assert process.pid is not None
    return psutil.Process(process.pid).memory_info().rss / MIB


async def sample(processes: list[SalesbotProcess], seconds: float) -> dict[str, float]:
    """Peak RSS per process kind over `seconds`."""
    peaks: dict[str, float] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for process in processes:
            peaks[process.kind] = max(peaks.get(process.kind, 0.0), rss_mib(process))
        await asyncio.sleep(0.5)
    return {kind: round(value, 1) for kind, value in peaks.items()}


async def measure(services: Services, workdir: Path, args: argparse.Namespace, embedding: dict[str, str]) -> Any:
    # The scenario's database is moved to the model (`salesbot reindex`), so searches and memory writes use it.
    config = SystemConfig(
        debounce_seconds=DEBOUNCE_SECONDS,
        debounce_max_seconds=5,
        llm_model=args.model,
        embedding_model=embedding["EMBEDDING_MODEL"],
        extra_env={name: value for name, value in embedding.items() if name != "EMBEDDING_MODEL"},
    )
    system = System(services, workdir, config)
    await system.open()
    try:
        await system.start(workers=1, timeout=STARTUP_TIMEOUT_SECONDS)
        idle = await sample(system.processes, 5)
        conversations = Conversations(system, DEBOUNCE_SECONDS)
        load_task = asyncio.create_task(conversations.step(args.rate, args.seconds))
        under_load = await sample(system.processes, args.seconds)
        step = (await load_task).summary()
        after = await sample(system.processes, 5)
    finally:
        await system.close()
    return {
        "embedding_model": embedding.get("EMBEDDING_MODEL", "offline"),
        "idle_rss_mib": idle,
        "under_load_peak_rss_mib": under_load,
        "idle_after_load_rss_mib": after,
        "load": {
            "offered_per_minute": args.rate,
            "seconds": args.seconds,
            "answered": step["conversations_answered"],
            "p95_ms": step["reply_overhead_p95_ms"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=600, help="new conversations per minute during the load phase")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--model", default="bench-llm")
    args = parser.parse_args()
    default_model = EmbeddingSettings.model_fields["model"].default
    variants: list[dict[str, str]] = [{"EMBEDDING_MODEL": default_model}, {"EMBEDDING_MODEL": "offline"}]
    bge = local_bge_m3()
    if bge is not None:
        variants.append({"EMBEDDING_MODEL": "BAAI/bge-m3", "EMBEDDING_MODEL_PATH": bge})
    results = []
    with tempfile.TemporaryDirectory(prefix="sb-bench-memory-") as tmp:
        services = Services(Path(tmp) / "services", durable=True)
        services.start()
        try:
            for index, embedding in enumerate(variants):
                workdir = Path(tmp) / f"run-{index}"
                workdir.mkdir()
                results.append(asyncio.run(measure(services, workdir, args, embedding)))
        finally:
            services.stop()
    print(f"{'embedding':<20} {'process':<8} {'idle MiB':>9} {'load peak MiB':>14} {'after MiB':>10}")
    for result in results:
        for kind in ("api", "worker"):
            print(
                f"{result['embedding_model']:<20} {kind:<8} {result['idle_rss_mib'][kind]:>9.1f} "
                f"{result['under_load_peak_rss_mib'][kind]:>14.1f} {result['idle_after_load_rss_mib'][kind]:>10.1f}"
            )
    if bge is None:
        print("BGE-M3: no local copy (EMBEDDING_MODEL_PATH or a fastembed cache); measured with the offline embedder")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "memory",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "llm_model": args.model,
                "bge_m3_local_copy": bge,
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
