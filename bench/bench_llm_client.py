"""The LLM client's own CPU per turn: a pydantic-ai agent turn against the same HTTP requests sent with httpx alone.

    .venv/bin/python bench/bench_llm_client.py                # 16 rounds of 15 turns each way
    .venv/bin/python bench/bench_llm_client.py --rounds 30 --turns 20

A turn as the load benchmark's: the model asks for a catalog search, the tool answers with five products, the
model replies (two requests and a tool call). The agent has seven tools with the names and parameters of a
sales stage's tools and instructions of the product's size (about 4 KB); the tools answer from memory, so what is
measured is pydantic-ai, the OpenAI SDK and httpx (no database, no embedding). The model is the fake
OpenAI-compatible LLM of the test suite, served from a thread of this process on 127.0.0.1; only the event
loop's thread is timed (`time.thread_time`), so the fake's own work is not counted.

The baseline sends the two request bodies the agent sent (recorded by the fake) with a bare `httpx.AsyncClient`
and parses the answers as JSON: the HTTP and JSON work a turn cannot avoid. The difference is what pydantic-ai's
graph, its OpenAI model and the OpenAI SDK add. Both run in this process, alternating round by round (the order
flips each round), and the medians of the rounds' CPU per turn are printed with their ratio: on a shared machine,
only a comparison within one run means anything. Writes bench/results/llm_client.json. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake LLM lives in the test suite

from tests.fakes.llm import FakeLLM, Script, ToolCall  # noqa: E402

from salesbot.agent.models import chat_model  # noqa: E402
from salesbot.settings import LLMSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "llm_client.json"
QUESTION = "Do you have office printers for a team of ten?"
REPLY = "We have several office printers in stock; shall I prepare a quote?"
INSTRUCTIONS = (
    "You are the sales assistant of an office equipment company. Answer in the customer's language, find products "
    "with the catalog tools, state only prices the tools returned, and hand over to a manager when asked. "
) * 18
CATALOG = "Matching products (prices and stock from the catalog):\n" + "\n".join(
    f"- HP-LJ{4000 + index} HP LaserJet Pro {4000 + index}dn: {1249 + 100 * index}.00 AED, {5 + index} in stock, "
    "duplex, network, 40 pages a minute"
    for index in range(5)
)


@dataclass
class RecordingLLM(FakeLLM):
    """The fake LLM, keeping the request bodies it answered (the baseline sends them again)."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.bodies.append(body)
        return await super().respond(body)


def sales_agent(model: OpenAIChatModel) -> Agent[None, str]:
    """Seven tools with the names and parameters of a sales stage's tools; they answer from memory."""
    agent: Agent[None, str] = Agent(model, instructions=INSTRUCTIONS)

    @agent.tool_plain
    async def search_products(
        query: str, max_price: float | None = None, category: str | None = None, in_stock_only: bool = False
    ) -> str:
        """Search the catalog for products that match what the customer is looking for (a need, a kind of
        product, a budget). Returns up to five products with their catalog price and stock."""
        return CATALOG

    @agent.tool_plain
    async def get_product(sku: str) -> str:
        """Look up one product by SKU: current unit price, stock and description from the catalog."""
        return CATALOG.splitlines()[1]

    @agent.tool_plain
    async def search_knowledge(query: str) -> str:
        """Answer a question about delivery, warranty, payment or the company from the knowledge base."""
        return "Delivery takes 2-3 working days in the city."

    @agent.tool_plain
    async def advance_stage(stage: str, reason: str) -> str:
        """Move the conversation to the next stage of the sales funnel when the customer is ready for it."""
        return "ok"

    @agent.tool_plain
    async def save_customer_details(
        name: str | None = None, company: str | None = None, email: str | None = None, city: str | None = None
    ) -> str:
        """Save what the customer told about themselves and their company."""
        return "saved"

    @agent.tool_plain
    async def request_human(reason: str) -> str:
        """Hand the conversation over to a human sales manager."""
        return "a manager will take over"

    @agent.tool_plain
    async def recall_customer_memory(query: str) -> str:
        """Recall what this customer discussed in earlier conversations."""
        return "nothing remembered"

    return agent


async def _measure(llm: RecordingLLM, *, rounds: int, turns: int) -> dict[str, list[float]]:
    # The product's model: what `agent.models.chat_model` builds for LLM_BASE_URL (no SDK retries, a deadline).
    settings = LLMSettings(model="bench-llm", base_url=llm.base_url, api_key="sk-bench-not-a-real-key")
    agent = sales_agent(chat_model("bench-llm", settings))
    for _ in range(10):  # warm up: imports, connections, caches
        result = await agent.run(QUESTION)
        assert result.output == REPLY, result.output
    bodies = [json.dumps(body).encode() for body in llm.bodies[-2:]]
    url = f"{llm.base_url}/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench-not-a-real-key"}

    async with httpx.AsyncClient(timeout=10) as client:

        async def agent_turn() -> None:
            await agent.run(QUESTION)

        async def httpx_requests() -> None:
            for body in bodies:
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()
                response.json()

        cases = {"pydantic_ai_turn": agent_turn, "httpx_requests": httpx_requests}
        for _ in range(10):
            await httpx_requests()
        spent: dict[str, list[float]] = {name: [] for name in cases}
        for index in range(rounds):
            order = list(cases) if index % 2 == 0 else list(reversed(cases))
            for name in order:
                started = time.thread_time()
                for _ in range(turns):
                    await cases[name]()
                spent[name].append((time.thread_time() - started) * 1000 / turns)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--turns", type=int, default=15, help="turns per model per round")
    args = parser.parse_args()

    llm = RecordingLLM(scripts=[Script(QUESTION, [[ToolCall("search_products", {"query": "{prompt}"})], REPLY])])
    load_average = [round(value, 2) for value in os.getloadavg()]
    with llm.in_thread():
        spent = asyncio.run(_measure(llm, rounds=args.rounds, turns=args.turns))
    medians = {name: round(statistics.median(values), 2) for name, values in spent.items()}
    ratio = round(medians["pydantic_ai_turn"] / medians["httpx_requests"], 2)
    print(f"{'client':18} {'median ms/turn':>15} {'min':>8} {'max':>8}")
    for name, values in spent.items():
        print(f"{name:18} {medians[name]:>15.2f} {min(values):>8.2f} {max(values):>8.2f}")
    print(
        f"pydantic-ai turn / httpx alone: x{ratio} (medians of {args.rounds} alternating rounds of {args.turns} turns)"
    )
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "llm_client",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load_average_before": load_average,
                "command": f"bench/bench_llm_client.py --rounds {args.rounds} --turns {args.turns}",
                "turn": "2 requests and 1 tool call (search_products), 7 tools, ~4 KB of instructions",
                "request_bytes": [len(json.dumps(body)) for body in llm.bodies[-2:]],
                "cpu_ms_per_turn": {
                    name: {"median": medians[name], "rounds": [round(value, 2) for value in values]}
                    for name, values in spent.items()
                },
                "ratio": ratio,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
