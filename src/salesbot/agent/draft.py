"""The agent's database access during one generation: short transactions, writes kept for the turn's commit.

A turn (salesbot.conversations.turn) holds no transaction while the model thinks. The agent reads through
`Draft.session`, whose transaction lasts one step (the reads before the run, one tool call, the reads after
it) and is then rolled back, which returns its connection to the pool. A tool that writes does its work in
that transaction as before (so the rest of the call sees it) and `keep`s an *effect*: how to do the same write
again. Effects are replayed at the start of every later step, so a quote created by one tool call is there
for the next (a stage change that needs a quote, its acceptance), and applied once more in the turn's commit
transaction if the draft is kept. A withdrawn or discarded draft therefore leaves nothing behind, and nothing
it wrote was ever visible to anyone else (no job could pick up a payment link or CRM sync of a draft).

`after_commit` effects (the memory's facts, which embed text) run in a transaction of their own once the turn
committed a kept draft, so the commit never waits for an embedder.

Without a turn (evaluation, tests, the console) a draft is *direct*: the caller's session and transaction,
writes stay where they are and the caller commits; `keep` has nothing to do and `after_commit` runs at once.
Effects must be deterministic given the database they run against: an inserted row keeps the id its first run
got from the sequence (ids are never handed out twice, even by a rolled-back transaction).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.kit.logging import get_logger

log = get_logger(__name__)

Effect = Callable[[AsyncSession], Awaitable[None]]


class Draft:
    def __init__(self, session: AsyncSession, *, deferred: bool) -> None:
        self.session = session
        self.deferred = deferred
        self.effects: list[Effect] = []
        self.after_commit_effects: list[Effect] = []

    @classmethod
    def direct(cls, session: AsyncSession) -> Draft:
        return cls(session, deferred=False)

    @classmethod
    def deferred_on(cls, sessionmaker: async_sessionmaker[AsyncSession]) -> Draft:
        return cls(sessionmaker(), deferred=True)

    async def enter(self) -> None:
        """Start a step: a transaction in which the writes kept so far are in place."""
        if not self.deferred or self.session.in_transaction():
            return
        await self.session.begin()
        for effect in self.effects:
            await effect(self.session)
        await self.session.flush()

    async def release(self) -> None:
        """End the step: roll its transaction back and give the connection back (the effects stay kept)."""
        if self.deferred and self.session.in_transaction():
            await self.session.rollback()

    def keep(self, effect: Effect) -> None:
        """A write just done in this step: replay it in later steps and in the commit."""
        if self.deferred:
            self.effects.append(effect)

    async def after_commit(self, effect: Effect) -> None:
        """A write that follows the turn's commit, in a transaction of its own (direct: now, in the session)."""
        if self.deferred:
            self.after_commit_effects.append(effect)
        else:
            await effect(self.session)

    async def apply(self, session: AsyncSession) -> None:
        """Apply the kept writes in the turn's commit transaction."""
        if not self.effects:
            return  # nothing to flush yet: the commit's own flush writes the turn's changes in one go
        for effect in self.effects:
            await effect(session)
        await session.flush()

    async def close(self) -> None:
        if not self.deferred:
            return
        try:
            await self.session.close()
        except Exception:
            # A step cancelled mid-query (the turn's hard stop) leaves its connection unusable: it is dropped.
            log.warning("agent.draft_close_failed", exc_info=True)
            await self.session.invalidate()


class DraftToolset(WrapperToolset[Any]):
    """Every tool call is one step of the run's draft: no transaction outlives it into the model's turn."""

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        draft: Draft = ctx.deps.draft
        await draft.enter()
        try:
            return await super().call_tool(name, tool_args, ctx, tool)
        finally:
            await draft.release()


class ReleasingModel(WrapperModel):
    """The model of a run on a draft: before each request the draft's step ends, so whatever read the database
    since the last tool call (instructions, output checks), no transaction is open while the model thinks."""

    def __init__(self, wrapped: Model, draft: Draft) -> None:
        super().__init__(wrapped)
        self.draft = draft

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        await self.draft.release()
        return await super().request(messages, model_settings, model_request_parameters)
