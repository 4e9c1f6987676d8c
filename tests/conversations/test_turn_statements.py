"""What one conversation costs the worker in database work: the statements and pooled connections of its turn
and delivery. A budget, not a measurement: every statement is Python work in the worker (SQLAlchemy building
it, reading its rows) and a round trip, and the turn used to read the same rows several times. A change that
needs more raises the budget here, on purpose.

Real pipeline: app, PostgreSQL, Redis, arq worker, the real agent with a catalog search; the LLM is a
pydantic-ai `FunctionModel`."""

from __future__ import annotations

import re
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import event

from salesbot.agent.service import SalesAgentService
from salesbot.db import unit_of_work
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.seed import seed_demo_data
from tests.fakes.pipeline import Pipeline

# A new customer's two messages, one catalog search, one reply (the load benchmark's conversation). Before the
# budget: 56 statements and 11 connections (the start, a second read of the same rows, three flushes in the
# commit, a peek transaction per delivered message). Then 44 and 9: the search read the vector column's
# dimension on every turn, and delivery opened one more transaction to find nothing left to send. Then 42: the
# vector branch read its candidates' categories and similarities in a second query after the index scan.
STATEMENTS = 41
CONNECTIONS = 8


def searching_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    last = messages[-1]
    if isinstance(last, ModelRequest) and any(isinstance(part, ToolReturnPart) for part in last.parts):
        return ModelResponse(parts=[TextPart("We have several office printers in stock; shall I prepare a quote?")])
    return ModelResponse(parts=[ToolCallPart("search_products", {"query": "office printer"})])


async def test_a_conversation_stays_within_its_database_budget(pipeline: Pipeline) -> None:
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        await seed_demo_data(session, get_embedder(pipeline.resources.settings))
    pipeline.worker.generator = SalesAgentService(model=FunctionModel(searching_llm, model_name="searching-llm"))
    engine = pipeline.resources.engine.sync_engine
    statements: list[str] = []
    connections: list[object] = []

    def executed(*args: Any) -> None:
        statements.append(re.sub(r"\s+", " ", args[2])[:100])

    def checked_out(*args: Any) -> None:
        connections.append(args[0])

    costs: list[tuple[int, int]] = []
    # The first conversations fill the process's caches (the catalog's SKUs, the pgvector version): the third
    # is what every later one costs.
    for index in range(3):
        chat = f"97150123{index:04d}"
        await pipeline.wazzup_text(chat, "Hi")
        await pipeline.wazzup_text(chat, "Do you have office printers?")
        statements.clear()
        connections.clear()
        event.listen(engine, "before_cursor_execute", executed)
        event.listen(engine.pool, "checkout", checked_out)
        try:
            await pipeline.worker.drain()
        finally:
            event.remove(engine, "before_cursor_execute", executed)
            event.remove(engine.pool, "checkout", checked_out)
        costs.append((len(statements), len(connections)))

    assert [sent.text for sent in pipeline.wazzup_api.sent] == [
        "We have several office printers in stock; shall I prepare a quote?"
    ] * 3
    listing = "\n".join(statements)
    assert len(statements) <= STATEMENTS, f"{len(statements)} statements (costs {costs}):\n{listing}"
    assert len(connections) <= CONNECTIONS, f"{len(connections)} connections (costs {costs})"
