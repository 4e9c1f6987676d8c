"""The boundary between a conversation turn and the agent: `ReplyRequest -> AgentReply`.

The turn job (conversations) builds a `ReplyRequest` with a deferred `Draft` (salesbot.agent.draft) and no
open transaction, and calls a `ReplyGenerator`. The agent changes the conversation and customer (stage, facts,
details) on the detached copies it is given, and writes rows (quotes, ...) through the draft's session in short
transactions that are rolled back, keeping each write as an effect; the turn job applies the copies' changes
and the effects in its commit, or drops them when it withdraws or discards the draft. Without a draft the
session is used directly (flushed only) and the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.draft import Draft
from salesbot.models import Conversation, Customer, Message
from salesbot.outbox.service import OutboundMedia
from salesbot.resources import Resources


@dataclass
class LLMUsage:
    """What the LLMs were asked during one generation, counted per request as it happens (so a draft that is
    discarded, or a run cut by the turn's budget, still reports the requests it made)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    # The last LLM that answered (None: no LLM answered, e.g. only the offline responder).
    model: str | None = None

    def add(self, *, model: str | None, tokens_in: int = 0, tokens_out: int = 0, cost: Decimal | None = None) -> None:
        self.requests += 1
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost += cost or Decimal(0)
        if model is not None:
            self.model = model


@dataclass(frozen=True)
class ReplyRequest:
    session: AsyncSession
    resources: Resources
    conversation: Conversation
    customer: Customer
    # The customer's messages of this burst, already persisted, oldest first.
    new_messages: Sequence[Message]
    # When the turn's budget runs out (`asyncio` loop time); LLM requests are cut there and the offline responder
    # answers instead. None: no budget (evaluation, direct calls).
    deadline: float | None = None
    # Filled by the generator with every LLM request it makes.
    usage: LLMUsage = field(default_factory=LLMUsage)
    # The turn's deferred draft (its `session` is `session`); None: write through `session` directly.
    draft: Draft | None = None


@dataclass(frozen=True)
class AgentReply:
    """What the customer should receive, with the turn record stored on the outbound message."""

    text: str
    model: str
    fallback_used: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # True when the agent handed the chat to a manager (request_human, usage limit): the conversation is
    # already owned by a human and this reply is the last automated message, sent despite the takeover.
    handoff: bool = False
    # Files sent after the text, in order: photos of the products it names, the PDF of a quote it presents.
    media: list[OutboundMedia] = field(default_factory=list)


class ReplyGenerator(Protocol):
    async def __call__(self, request: ReplyRequest) -> AgentReply: ...
