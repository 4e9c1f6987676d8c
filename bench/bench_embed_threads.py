"""Embedding threads: CPU per question when a serving process embeds now and then, one thread vs one per core.

    .venv/bin/python bench/bench_embed_threads.py
    .venv/bin/python bench/bench_embed_threads.py --questions 100 --pause-ms 0 10 50

A worker embeds a customer's question for a search, or a turn's facts, between other work: calls are short and
apart. Numerical libraries keep their worker threads spinning for a while after a call, to answer the next one
sooner; between occasional calls that spinning is CPU taken from the event loop, the API and PostgreSQL.

Two engines, each at EMBEDDING_THREADS (default 1) and at one thread per core (the libraries' default):

- the default embedder (multilingual USE, numpy on OpenBLAS), through salesbot's `UniversalSentenceEncoder`;
- onnxruntime, which runs fastembed models such as BGE-M3 (its weights cannot be downloaded here): a synthetic
  graph of 24 matrix products over 16 tokens of 1024 dimensions, BGE-M3's width and depth without attention.

For each: CPU and wall time per question with pauses between questions, and a batch of documents as a reindex
embeds them. Numbers, not pass/fail; writes bench/results/embed_threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "embed_threads.json"
ONNX_LAYERS = 24
ONNX_WIDTH = 1024
ONNX_TOKENS = 16
BATCH_DOCUMENTS = 320


def measure(call: Callable[[], Any], *, questions: int, pause_seconds: float) -> dict[str, float]:
    """CPU (the whole process: every thread) and wall milliseconds per call, with a pause after each."""
    call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(questions):
        call()
        if pause_seconds:
            time.sleep(pause_seconds)
    cpu_ms = (time.process_time() - cpu) / questions * 1000
    wall_ms = ((time.perf_counter() - wall) / questions - pause_seconds) * 1000
    return {"cpu_ms": round(cpu_ms, 2), "wall_ms": round(wall_ms, 2)}


def use_case(threads: int, args: argparse.Namespace) -> dict[str, Any]:
    from salesbot.knowledge.embedders.use import UniversalSentenceEncoder

    embedder = UniversalSentenceEncoder(threads=threads)
    embedder.load()
    counter = iter(range(10**9))

    def question() -> None:
        # A new text each time, as customers write them (no cache in this path anyway).
        embedder.embed_many([f"do you have office printers for a team of {next(counter)} people?"])

    documents = [
        f"Product {index}: business laptop, 14-inch display, 16 GB memory, 512 GB SSD"
        for index in range(BATCH_DOCUMENTS)
    ]
    return {
        "questions": {
            str(pause): measure(question, questions=args.questions, pause_seconds=pause / 1000)
            for pause in args.pause_ms
        },
        "batch": measure(lambda: embedder.embed_many(documents), questions=1, pause_seconds=0),
    }


def onnx_case(threads: int, args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, previous = [], [], "hidden_in"
    for layer in range(ONNX_LAYERS):
        matrix = (rng.standard_normal((ONNX_WIDTH, ONNX_WIDTH)) / np.sqrt(ONNX_WIDTH)).astype(np.float32)
        weights.append(numpy_helper.from_array(matrix, f"w{layer}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{layer}"], [f"m{layer}"]))
        nodes.append(helper.make_node("Relu", [f"m{layer}"], [f"r{layer}"]))
        previous = f"r{layer}"
    graph = helper.make_graph(
        nodes,
        "matmul-stack",
        [helper.make_tensor_value_info("hidden_in", TensorProto.FLOAT, [None, ONNX_WIDTH])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [None, ONNX_WIDTH])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = onnxruntime.SessionOptions()
    # What fastembed does with its `threads` argument (salesbot passes EMBEDDING_THREADS).
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    question_input = {"hidden_in": rng.standard_normal((ONNX_TOKENS, ONNX_WIDTH)).astype(np.float32)}
    batch_input = {"hidden_in": rng.standard_normal((ONNX_TOKENS * 32, ONNX_WIDTH)).astype(np.float32)}
    return {
        "questions": {
            str(pause): measure(
                lambda: session.run(None, question_input), questions=args.questions, pause_seconds=pause / 1000
            )
            for pause in args.pause_ms
        },
        "batch": measure(lambda: session.run(None, batch_input), questions=3, pause_seconds=0),
    }


def main() -> int:
    from salesbot.settings import EmbeddingSettings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100, help="questions per pause length")
    parser.add_argument("--pause-ms", type=float, nargs="+", default=[0, 10, 50], help="pause after each question")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    configured = EmbeddingSettings.model_fields["threads"].default
    engines = {"use": use_case, "onnxruntime": onnx_case}
    results: dict[str, dict[str, Any]] = {}
    for engine, run in engines.items():
        results[engine] = {}
        for label, threads in (("per_core", cores), ("configured", configured)):
            results[engine][label] = {"threads": threads, **run(threads, args)}
    print(f"{'engine':<12} {'threads':>7} " + " ".join(f"{f'pause {p:g} ms: cpu/wall':>26}" for p in args.pause_ms))
    for engine, cases in results.items():
        for case in cases.values():
            cells = " ".join(
                f"{case['questions'][str(p)]['cpu_ms']:>15.2f} / {case['questions'][str(p)]['wall_ms']:>7.2f} ms"
                for p in args.pause_ms
            )
            print(f"{engine:<12} {case['threads']:>7} {cells}  batch {case['batch']['wall_ms']:.0f} ms wall")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "embed_threads",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpus": cores,
                "questions": args.questions,
                "pauses_ms": args.pause_ms,
                "batch": {"use_documents": BATCH_DOCUMENTS, "onnx_tokens": ONNX_TOKENS * 32},
                "onnx_model": f"{ONNX_LAYERS} MatMul+Relu layers, {ONNX_WIDTH} wide, {ONNX_TOKENS} tokens a question",
                "engines": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
