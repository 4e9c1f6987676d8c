"""A turn ends in an answer or an explicit handoff within TURN_BUDGET_SECONDS, a manager never waits for the model,
and every LLM request of a turn is counted (pipeline: real app, PostgreSQL, Redis and arq worker; the LLM is a
pydantic-ai `FunctionModel`)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage
from sqlalchemy import select

from salesbot.agent.models import model_chain
from salesbot.agent.offline import OFFLINE_MODEL_NAME
from salesbot.agent.playbook import load_playbook
from salesbot.agent.service import SalesAgentService
from salesbot.conversations import service, tasks, turn
from salesbot.conversations.tasks import TURN_ATTEMPTS
from salesbot.conversations.turn import MAX_TURN_ATTEMPTS
from salesbot.db import unit_of_work
from salesbot.models import Author, DeliveryStatus, Direction, LlmUsage, Owner
from salesbot.models._columns import utcnow
from salesbot.reporting.stats import compute_stats
from tests.fakes.pipeline import Pipeline

CHAT = "79990001133"
# A short budget keeps the tests quick; the job timeout of the pipeline is 20 s.
BUDGET = {"root": {"turn_budget_seconds": 3}}
# A generation still running is cut at the later of the budget and the job timeout less the hard-stop margin:
# with a 6 s job timeout that is the budget's 3 s (the pipeline's 20 s would make it 17 s).
SHORT_JOB = {"root": {"turn_budget_seconds": 3, "worker_job_timeout_seconds": 3 + turn.HARD_STOP_MARGIN_SECONDS}}
ANSWER = "Happy to help! Let me look into that for you."


@dataclass
class ScriptedLLM:
    """A `FunctionModel` LLM that answers `ANSWER`, can be held mid-request, and counts what it was asked."""

    hang: bool = False
    tokens_in: int = 120
    tokens_out: int = 15
    requests: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event | None = None

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        self.entered.set()
        if self.hang:
            await asyncio.Event().wait()
        gate = self.gate
        if gate is not None:
            await gate.wait()
        return ModelResponse(
            parts=[TextPart(ANSWER)],
            usage=RequestUsage(input_tokens=self.tokens_in, output_tokens=self.tokens_out),
            model_name="scripted-llm",
        )

    def hold(self) -> None:
        self.gate = asyncio.Event()
        self.entered.clear()

    def release(self) -> None:
        if self.gate is not None:
            self.gate.set()
            self.gate = None


async def usage_rows(pipeline: Pipeline) -> list[tuple[str, int, int, int]]:
    async with pipeline.resources.sessionmaker() as session:
        rows = await session.scalars(select(LlmUsage).order_by(LlmUsage.id))
        return [(row.outcome, row.requests, row.tokens_in, row.tokens_out) for row in rows]


async def test_take_over_while_the_agent_generates_commits_at_once_and_the_draft_never_reaches_the_outbox(
    pipeline: Pipeline,
) -> None:
    llm = ScriptedLLM()
    llm.hold()
    pipeline.worker.generator = SalesAgentService(model=FunctionModel(llm, model_name="scripted-llm"))
    await pipeline.worker.start()
    await pipeline.wazzup_text(CHAT, "Can I get a better price on the chairs?")
    await asyncio.wait_for(llm.entered.wait(), 10)

    [conversation] = await pipeline.conversations()
    # The model is held until after the take-over: waiting for the turn here would never end (the guard fails it).
    async with asyncio.timeout(20), unit_of_work(pipeline.resources.sessionmaker) as session:
        await service.take_over(session, conversation.id, hours=12)
    llm.release()
    await pipeline.worker.idle()

    assert llm.requests == 1
    assert pipeline.wazzup_api.sent == []
    assert await pipeline.messages(direction=Direction.OUTBOUND) == []
    [message] = await pipeline.messages(direction=Direction.INBOUND)
    assert message.processed_at is not None
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.HUMAN
    # The withdrawn draft was paid for: it is counted.
    assert await usage_rows(pipeline) == [("withdrawn", 1, llm.tokens_in, llm.tokens_out)]


@pytest.mark.parametrize("pipeline_overrides", [BUDGET])
async def test_an_llm_that_hangs_is_cut_at_the_budget_and_the_offline_responder_answers(pipeline: Pipeline) -> None:
    llm = ScriptedLLM(hang=True)
    pipeline.worker.generator = SalesAgentService(model=model_chain([FunctionModel(llm, model_name="hanging-llm")]))
    await pipeline.wazzup_text(CHAT, "Hello, do you sell office chairs?")
    await pipeline.worker.drain()

    assert llm.requests == 1
    [sent] = pipeline.wazzup_api.sent
    [reply] = [m for m in await pipeline.messages(direction=Direction.OUTBOUND) if m.part_index == 0]
    assert (reply.author, reply.model, reply.fallback_used) == (Author.BOT, OFFLINE_MODEL_NAME, True)
    assert sent.text == reply.text
    [conversation] = await pipeline.conversations()
    assert conversation.owner is Owner.BOT
    # The cut request is counted (its tokens are unknown).
    assert await usage_rows(pipeline) == [("sent", 1, 0, 0)]


@pytest.mark.parametrize("pipeline_overrides", [SHORT_JOB])
async def test_a_generation_that_overruns_the_budget_becomes_a_handoff(pipeline: Pipeline) -> None:
    pipeline.generator.hold()  # never released: the agent (a test double here) does not end on its own
    await pipeline.wazzup_text(CHAT, "Hello, do you sell office chairs?")
    await pipeline.worker.drain()

    handoff = load_playbook().messages.handoff.get("en")
    assert [s.text for s in pipeline.wazzup_api.sent] == [handoff]
    assert [(m.author, m.delivery_status) for m in await pipeline.messages(direction=Direction.OUTBOUND)] == [
        (Author.SYSTEM, DeliveryStatus.SENT)
    ]
    [conversation] = await pipeline.conversations()
    assert (conversation.owner, conversation.needs_attention) == (Owner.HUMAN, True)
    assert conversation.owner_until is not None
    assert conversation.owner_until > utcnow()


async def test_a_turn_that_keeps_failing_tells_the_customer_and_hands_over(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "TURN_RETRY_BASE_SECONDS", 0.05)  # the retries, not their 2 s + 8 s of waiting
    pipeline.generator.fail_times = 100
    await pipeline.wazzup_text(CHAT, "Привет! Есть ли у вас офисные кресла?")
    await pipeline.worker.drain()

    # The job's tries and no more; the customer is told, in their language, that a manager takes over.
    assert len(pipeline.generator.calls) == TURN_ATTEMPTS
    assert [s.text for s in pipeline.wazzup_api.sent] == [load_playbook().messages.handoff.get("ru")]
    [message] = await pipeline.messages(direction=Direction.INBOUND)
    assert (message.turn_attempts, message.processed_at is not None) == (TURN_ATTEMPTS, True)
    [conversation] = await pipeline.conversations()
    assert (conversation.owner, conversation.needs_attention) == (Owner.HUMAN, True)


async def test_a_discarded_draft_is_counted_in_the_dashboard(pipeline: Pipeline) -> None:
    llm = ScriptedLLM()
    llm.hold()
    pipeline.worker.generator = SalesAgentService(model=FunctionModel(llm, model_name="scripted-llm"))
    await pipeline.worker.start()
    await pipeline.wazzup_text(CHAT, "Do you deliver?")
    await asyncio.wait_for(llm.entered.wait(), 10)
    await pipeline.wazzup_text(CHAT, "To Kazan, I mean")
    await asyncio.sleep(0.5)  # longer than the debounce window: the message is stored before the draft ends
    llm.release()
    await pipeline.worker.idle()

    assert llm.requests == 2
    assert [s.text for s in pipeline.wazzup_api.sent] == [ANSWER]
    assert await usage_rows(pipeline) == [
        ("discarded", 1, llm.tokens_in, llm.tokens_out),
        ("sent", 1, llm.tokens_in, llm.tokens_out),
    ]
    async with pipeline.resources.sessionmaker() as session:
        totals = (await compute_stats(session, days=1, now=utcnow())).totals
    assert (totals.llm_requests, totals.llm_tokens_in, totals.llm_tokens_out) == (
        llm.requests,
        llm.requests * llm.tokens_in,
        llm.requests * llm.tokens_out,
    )
    [conversation] = await pipeline.conversations()
    assert (conversation.tokens_in_total, conversation.tokens_out_total) == (2 * llm.tokens_in, 2 * llm.tokens_out)


async def die_mid_generation(pipeline: Pipeline, conversation_id: int) -> None:
    """A worker killed while the model thinks: only the turn's start was committed (the generation's transaction
    dies with the connection, as cancelling it here rolls it back)."""
    pipeline.generator.hold()
    started = asyncio.create_task(turn.run_turn(pipeline.resources, pipeline.generator, conversation_id))
    await asyncio.wait_for(pipeline.generator.entered.wait(), timeout=30)
    started.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await started
    pipeline.generator.release()


async def test_a_chat_whose_worker_died_twice_during_its_turn_still_gets_the_agents_answer(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Hello, do you sell office chairs?")
    [conversation] = await pipeline.conversations()
    for _ in range(2):
        await die_mid_generation(pipeline, conversation.id)

    await pipeline.worker.drain()

    [sent] = pipeline.wazzup_api.sent
    assert sent.text == "Answer to: Hello, do you sell office chairs?"
    [message] = await pipeline.messages(direction=Direction.INBOUND)
    assert (message.turn_attempts, message.processed_at is not None) == (3, True)
    [conversation] = await pipeline.conversations()
    assert (conversation.owner, conversation.needs_attention) == (Owner.BOT, False)


async def test_a_message_that_kills_its_worker_every_time_is_handed_over(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "Привет! Есть ли у вас офисные кресла?")
    [conversation] = await pipeline.conversations()
    for _ in range(MAX_TURN_ATTEMPTS):
        await die_mid_generation(pipeline, conversation.id)
    generations = len(pipeline.generator.calls)

    await pipeline.worker.drain()

    assert (generations, len(pipeline.generator.calls)) == (MAX_TURN_ATTEMPTS, MAX_TURN_ATTEMPTS)
    assert [s.text for s in pipeline.wazzup_api.sent] == [load_playbook().messages.handoff.get("ru")]
    [conversation] = await pipeline.conversations()
    assert (conversation.owner, conversation.needs_attention) == (Owner.HUMAN, True)
