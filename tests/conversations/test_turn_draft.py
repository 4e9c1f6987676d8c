"""A turn holds nothing while the model thinks: the agent's tool calls are short transactions whose writes are kept
for the turn's commit (salesbot.agent.draft), and two turns of one chat cannot both answer a burst (the commit's
check on the burst's rows, not a lock held through the generation). Real pipeline: app, PostgreSQL, Redis, arq
worker; the LLM is a pydantic-ai `FunctionModel`."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import func, select, text, update

from salesbot.agent.service import SalesAgentService
from salesbot.conversations import service, turn
from salesbot.conversations.tasks import sweep_stalled_turns, turn_lock_key
from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.seed import seed_demo_data
from salesbot.models import Conversation, Direction, Message, Owner, Quote, SalesStage
from salesbot.models._columns import utcnow
from salesbot.worker_context import WorkerContext
from tests.fakes.pipeline import Pipeline
from tests.fakes.reply import RecordingReplyGenerator
from tests.fakes.waiting import eventually

CHAT = "971501230001"
SKU = "HP-LJM211DW"


def _quote_id(messages: list[ModelMessage]) -> int:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart) and part.tool_name == "create_quote":
                    found = re.search(r"#(\d+)", part.model_response_str())
                    assert found is not None, part.model_response_str()
                    return int(found.group(1))
    raise AssertionError("no create_quote result")


@dataclass
class QuotingLLM:
    """Creates a quote, thinks (held at `gate`), moves the chat to closing (which needs that quote), answers."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    thinking: bool = False
    shown_quote: int | None = None
    step: int = 0

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.step += 1
        if self.step == 1:
            call = ToolCallPart("create_quote", {"items": [{"sku": SKU, "qty": 3}]})
            return ModelResponse(parts=[call], model_name="quoting-llm")
        if self.step == 2:
            self.shown_quote = _quote_id(messages)
            self.thinking = True
            await self.gate.wait()
            self.thinking = False
            call = ToolCallPart("advance_stage", {"to_stage": "closing", "reason": "The customer accepts the quote."})
            return ModelResponse(parts=[call], model_name="quoting-llm")
        return ModelResponse(parts=[TextPart(f"Here is quote #{self.shown_quote}.")], model_name="quoting-llm")


async def _quoting_chat(pipeline: Pipeline, llm: QuotingLLM) -> Conversation:
    """A chat in the quoting stage whose turn is held by the model after it created a quote."""
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        await seed_demo_data(session, get_embedder(pipeline.resources.settings))
    await pipeline.wazzup_text(CHAT, "Please send me the quote for 3 printers")
    [conversation] = await pipeline.conversations()
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        await session.execute(
            update(Conversation).where(Conversation.id == conversation.id).values(sales_stage=SalesStage.QUOTING)
        )
    pipeline.worker.generator = SalesAgentService(model=FunctionModel(llm, model_name="quoting-llm"))
    await pipeline.worker.start()

    async def thinking() -> bool:
        return llm.thinking

    await eventually(thinking, what="the model thinking after the quote was created")
    return conversation


async def _quotes(pipeline: Pipeline) -> list[Quote]:
    async with pipeline.resources.sessionmaker() as session:
        return list(await session.scalars(select(Quote).order_by(Quote.id)))


async def test_a_quote_created_by_the_agent_is_held_by_no_transaction_and_committed_with_the_reply(
    pipeline: Pipeline,
) -> None:
    llm = QuotingLLM()
    conversation = await _quoting_chat(pipeline, llm)
    try:
        async with pipeline.resources.engine.connect() as connection:
            open_transactions = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            )
        assert open_transactions == 0
        # The draft's quote is nowhere yet: not committed, and no transaction holds it.
        assert await _quotes(pipeline) == []
    finally:
        llm.gate.set()
    await pipeline.worker.idle()

    # The quote the model was shown, with that id, and accepted by the stage change that needed it.
    [quote] = await _quotes(pipeline)
    assert quote.id == llm.shown_quote
    assert quote.accepted_at is not None
    assert [item["sku"] for item in quote.items] == [SKU]
    [stored] = await pipeline.conversations()
    assert stored.sales_stage is SalesStage.CLOSING
    assert stored.facts["last_quote_id"] == quote.id
    # The reply, then the quote's PDF (the reply's media part).
    text_part, pdf = pipeline.wazzup_api.sent
    assert text_part.text == f"Here is quote #{quote.id}."
    assert pdf.text is None
    assert pdf.media is not None
    assert f"quotes/{quote.id}" in pdf.media, pdf.media
    assert conversation.id == stored.id


async def test_a_takeover_while_the_model_thinks_withdraws_the_drafts_quote_too(pipeline: Pipeline) -> None:
    llm = QuotingLLM()
    conversation = await _quoting_chat(pipeline, llm)
    async with asyncio.timeout(20), unit_of_work(pipeline.resources.sessionmaker) as session:
        await service.take_over(session, conversation.id, hours=12)
    llm.gate.set()
    await pipeline.worker.idle()

    assert await _quotes(pipeline) == []
    [stored] = await pipeline.conversations()
    assert (stored.owner, stored.sales_stage) == (Owner.HUMAN, SalesStage.QUOTING)
    assert "last_quote_id" not in (stored.facts or {})
    assert await pipeline.messages(direction=Direction.OUTBOUND) == []
    [message] = await pipeline.messages(direction=Direction.INBOUND)
    assert message.processed_at is not None


async def test_two_turns_of_one_chat_answer_its_burst_once(pipeline: Pipeline) -> None:
    # The Redis lock that keeps a chat's turns apart is lost (Redis failed over, a lease expired): two turns run.
    generator = RecordingReplyGenerator()
    generator.hold()
    await pipeline.wazzup_text(CHAT, "Do you have office chairs?")
    [conversation] = await pipeline.conversations()
    resources = pipeline.resources
    first = asyncio.create_task(turn.run_turn(resources, generator, conversation.id))

    def generating(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return generator.running == count

        return check

    await eventually(generating(1), what="the first turn generating")
    second = asyncio.create_task(turn.run_turn(resources, generator, conversation.id))
    # Neither waits for the other's model: nothing the first holds blocks the second.
    await eventually(generating(2), what="both turns generating")
    generator.release()
    outcomes = await asyncio.gather(first, second)

    assert sorted(outcome.result for outcome in outcomes) == ["nothing_to_do", "replied"]
    replies = await pipeline.messages(direction=Direction.OUTBOUND)
    assert [reply.text for reply in replies] == ["Answer to: Do you have office chairs?"]
    [message] = await pipeline.messages(direction=Direction.INBOUND)
    assert message.processed_at is not None
    async with pipeline.resources.sessionmaker() as session:
        turns = await session.scalar(select(func.sum(Conversation.turn_count)))
    assert turns == 1


async def test_the_sweep_leaves_a_chat_whose_turn_is_running_alone(pipeline: Pipeline) -> None:
    # A long generation holds no row the sweep could see locked: the turn's lock says it is alive.
    await pipeline.wazzup_text(CHAT, "anyone there?")
    [conversation] = await pipeline.conversations()
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        await session.execute(update(Message).values(created_at=utcnow() - timedelta(minutes=5)))
    ctx: WorkerContext = {"resources": pipeline.resources}
    await pipeline.redis.set(turn_lock_key(conversation.id), "a running turn", px=60_000)
    assert await sweep_stalled_turns(ctx) == 0
    await pipeline.redis.delete(turn_lock_key(conversation.id))  # the holder died: its lock expired
    assert await sweep_stalled_turns(ctx) == 1


async def test_turns_waiting_on_the_model_need_no_database_connection_each(pipeline: Pipeline) -> None:
    # Four chats think at once on a pool of two connections (no overflow): a turn borrows one per short step.
    chats = [f"9715012300{index:02d}" for index in range(4)]
    for chat in chats:
        await pipeline.wazzup_text(chat, "Do you have office chairs?")
    conversations = await pipeline.conversations()
    engine = create_engine(pipeline.resources.settings.database_url, pool_size=2, max_overflow=0)
    resources = dataclasses.replace(pipeline.resources, engine=engine, sessionmaker=create_sessionmaker(engine))
    generator = RecordingReplyGenerator()
    generator.hold()
    try:
        turns = [asyncio.create_task(turn.run_turn(resources, generator, c.id)) for c in conversations]

        async def all_thinking() -> bool:
            return generator.running == len(chats)

        await eventually(all_thinking, what="every turn generating at once")
        generator.release()
        outcomes = await asyncio.gather(*turns)
    finally:
        generator.release()
        await engine.dispose()

    assert [outcome.result for outcome in outcomes] == ["replied"] * len(chats)
    replies = await pipeline.messages(direction=Direction.OUTBOUND)
    assert len(replies) == len(chats)
