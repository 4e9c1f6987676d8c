"""The worker's queues: turns wait on the LLM in WORKER_MAX_JOBS slots of their own, while deliveries and takeovers
run in theirs; no database transaction or row lock is held while the model thinks; a running turn's crash lease is
its own job timeout + 10 s, whatever the cron jobs (the inventory sync: 300 s) allow themselves."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from salesbot import queues
from salesbot.agent.service import SalesAgentService
from salesbot.models import Conversation, Customer, Owner
from salesbot.settings import InventorySettings
from tests.fakes.pipeline import Pipeline, wazzup_message
from tests.fakes.waiting import eventually
from tests.fakes.worker import PipelineWorker

TURN_SLOTS = 3


@dataclass
class HeldLLM:
    """A `FunctionModel` LLM whose requests wait at a gate until the test releases them."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0
    waiting: int = 0

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        return ModelResponse(parts=[TextPart("Happy to help with that.")], model_name="held-llm")

    def service(self) -> SalesAgentService:
        return SalesAgentService(model=FunctionModel(self, model_name="held-llm"))


def chat(index: int) -> str:
    return f"7999000{index:04d}"


async def conversation_of(pipeline: Pipeline, chat_id: str) -> Conversation:
    async with pipeline.resources.sessionmaker() as session:
        found = await session.scalar(select(Conversation).join(Customer).where(Customer.chat_id == chat_id))
    assert found is not None
    return found


@pytest.mark.parametrize("pipeline_overrides", [{"root": {"worker_max_jobs": TURN_SLOTS}}])
async def test_deliveries_and_takeovers_run_while_every_turn_slot_waits_on_the_llm(pipeline: Pipeline) -> None:
    llm = HeldLLM()
    pipeline.worker.generator = llm.service()
    await pipeline.worker.start()
    # One chat more than there are turn slots.
    for index in range(TURN_SLOTS + 1):
        await pipeline.wazzup_text(chat(index), "Do you have office chairs?")

    async def slots_full() -> bool:
        return llm.waiting == TURN_SLOTS

    await eventually(slots_full, what="every turn slot waiting on the model")

    # A manager answers chat 0 through the REST API (a delivery) and writes to chat 1 from the Wazzup inbox (a
    # takeover), while every turn slot is taken by a model call.
    token = pipeline.resources.settings.auth.api_token.get_secret_value()
    first = await conversation_of(pipeline, chat(0))
    response = await pipeline.client.post(
        f"/api/v1/conversations/{first.id}/messages",
        json={"text": "Anna here: yes, 40 in stock."},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    echo = wazzup_message(chat(1), "I'll take it from here", isEcho=True, status="sent", authorName="Anna")
    assert (await pipeline.wazzup({"messages": [echo]})).status_code == 200

    async def delivered_and_taken_over() -> bool:
        # Only while every turn still waits on the model: sharing their slots, the delivery and the takeover would
        # run once the turns' budget (TURN_BUDGET_SECONDS) ended them.
        assert llm.waiting == TURN_SLOTS, "the turns ended before the delivery and the takeover ran"
        sent = [message.text for message in pipeline.wazzup_api.sent]
        taken = (await conversation_of(pipeline, chat(1))).owner is Owner.HUMAN
        return sent == ["Anna here: yes, 40 in stock."] and taken

    await eventually(delivered_and_taken_over, what="the manager's message sent and the takeover applied")
    # WORKER_MAX_JOBS held: the last chat's turn still waits for a slot, it never reached the model.
    assert llm.requests == TURN_SLOTS
    assert llm.waiting == TURN_SLOTS

    llm.gate.set()
    await pipeline.worker.idle()
    assert llm.requests == TURN_SLOTS + 1
    # The chats the managers took keep their silence; the others are answered.
    answered = {message.chat_id for message in pipeline.wazzup_api.sent} - {chat(0)}
    assert answered == {chat(index) for index in range(2, TURN_SLOTS + 1)}


async def lock_nowait(connection: AsyncConnection, table: str, column: str, value: int) -> None:
    """Lock the rows at once or fail (`LockNotAvailableError`): NOWAIT never waits for another transaction."""
    rows = await connection.execute(
        text(f"SELECT id FROM {table} WHERE {column} = :value FOR UPDATE NOWAIT"),  # noqa: S608
        {"value": value},
    )
    assert rows.all(), f"no {table} row to lock"


async def model_thinking(pipeline: Pipeline, llm: HeldLLM, chat_id: str) -> Conversation:
    """Start the worker and a turn of `chat_id`, and return its conversation once the model holds the turn."""
    pipeline.worker.generator = llm.service()
    await pipeline.worker.start()
    await pipeline.wazzup_text(chat_id, "Do you have office chairs?")

    async def thinking() -> bool:
        return llm.waiting == 1

    await eventually(thinking, what="the turn waiting on the model")
    return await conversation_of(pipeline, chat_id)


async def test_the_conversation_and_customer_rows_are_free_while_the_model_thinks(pipeline: Pipeline) -> None:
    llm = HeldLLM()
    conversation = await model_thinking(pipeline, llm, chat(7))
    # What a manager's takeover, a REST write or the admin needs never waits for the model.
    async with pipeline.resources.engine.connect() as connection, connection.begin():
        await lock_nowait(connection, "conversations", "id", conversation.id)
        await lock_nowait(connection, "customers", "id", conversation.customer_id)
    assert llm.waiting == 1  # still thinking: the locks were taken mid-turn
    llm.gate.set()
    await pipeline.worker.idle()
    assert [message.chat_id for message in pipeline.wazzup_api.sent] == [chat(7)]


async def test_no_transaction_is_held_while_the_model_thinks(pipeline: Pipeline) -> None:
    llm = HeldLLM()
    conversation = await model_thinking(pipeline, llm, chat(7))
    try:
        async with pipeline.resources.engine.connect() as connection:
            async with connection.begin():
                await lock_nowait(connection, "messages", "conversation_id", conversation.id)
            idle_in_transaction = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            )
        assert idle_in_transaction == 0
    finally:
        llm.gate.set()
        await pipeline.worker.idle()


async def test_a_running_turn_is_leased_for_its_own_job_timeout_with_the_inventory_sync_configured(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # The inventory sync allows itself 300 s. arq leases a running job for the longest timeout of its worker's
    # functions + 10 s, and a SIGKILLed worker's job is re-run when that lease expires: on a worker of its own, the
    # sync cannot stretch a crashed turn's recovery to 310 s.
    settings = pipeline.resources.settings.model_copy(
        update={"inventory": InventorySettings(source="file", file_path=str(tmp_path / "stock.csv"))}
    )
    llm = HeldLLM()
    worker = PipelineWorker(dataclasses.replace(pipeline.resources, settings=settings), llm.service(), cron=True)
    assert worker.queue_names == [queues.TURNS, queues.MESSAGING, queues.SCHEDULED]
    await worker.start()
    try:
        await pipeline.wazzup_text(chat(8), "Do you have office chairs?")

        async def thinking() -> bool:
            return llm.waiting == 1

        await eventually(thinking, what="the turn waiting on the model")
        [lease] = [key async for key in pipeline.redis.scan_iter(match="arq:in-progress:turn:*")]
        remaining_ms = await pipeline.redis.pttl(lease)
        timeout_ms = settings.worker_job_timeout_seconds * 1000
        assert timeout_ms < remaining_ms <= timeout_ms + 10_000
    finally:
        llm.gate.set()
        await worker.stop()
