"""`generate_reply(ReplyRequest) -> AgentReply`: one conversation turn through the sales agent.

The turn: detect the language, mask PII, load history (+ rolling summary) and the returning-customer profile,
run the agent with the model chain under a per-turn usage limit and the turn's deadline (LLM requests end there
and the offline responder answers instead), unmask the reply, and record the turn
(model that answered, fallback, tokens, cost, latency, tool calls). Outcomes that are not a normal answer:

- usage limit hit -> the chat goes to a manager, with a polite last message (never silence);
- the draft kept stating ungrounded figures or quoting the instructions -> a safe answer;
- no model could answer at all -> a manager, with the playbook's "unavailable" message.

Database work goes through the request's `Draft` (salesbot.agent.draft): in a turn, each step (the reads before
the run, each tool call, the work after it) is a short transaction and writes are kept for the turn's commit, so
no transaction is open while the model thinks; otherwise the caller's session, flushed only, and the caller commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic_ai import (
    FallbackExceptionGroup,
    ModelAPIError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    capture_run_messages,
)
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.usage import UsageLimits
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent import repository
from salesbot.agent.agent import sales_agent
from salesbot.agent.attachments import reply_media
from salesbot.agent.deal_tools import hand_to_human
from salesbot.agent.deps import AgentDeps
from salesbot.agent.draft import Draft, ReleasingModel
from salesbot.agent.history import load_history, message_text, turn_prompt
from salesbot.agent.language import conversation_language
from salesbot.agent.models import OFFLINE_MODEL_NAME, llm_names, metered, model_for, turn_scope
from salesbot.agent.pii import SKU_MIN_DIGITS, PiiMasker
from salesbot.agent.playbook import Playbook, load_playbook
from salesbot.agent.reply import AgentReply, LLMUsage, ReplyRequest
from salesbot.agent.turn_context import turn_context
from salesbot.kit.logging import get_logger
from salesbot.kit.phones import PhoneDetector
from salesbot.knowledge.types import CatalogSearch
from salesbot.memory.turn import recall_for_turn, remember_turn
from salesbot.models import Conversation, Customer, Message
from salesbot.models._columns import utcnow
from salesbot.settings import Settings

log = get_logger(__name__)

SearchFactory = Callable[[AsyncSession, Settings], CatalogSearch]
# Tool calls per turn are bounded too: a few per model request at most.
TOOL_CALLS_PER_REQUEST = 4


def hybrid_search(session: AsyncSession, settings: Settings, *, redis: Redis | None = None) -> CatalogSearch:
    """The knowledge domain's search (hybrid pgvector + full-text) over the turn's session."""
    from salesbot.knowledge.embeddings import get_embedder
    from salesbot.knowledge.search import HybridSearch

    return HybridSearch(session, get_embedder(settings), redis=redis)


@dataclass(frozen=True)
class _RunResult:
    text: str
    messages: list[ModelMessage]
    outcome: str  # "answered", "usage_limit", "unsafe_draft", "unavailable"


class SalesAgentService:
    """Generates replies; tests and the evaluation inject a model, a search and a playbook."""

    def __init__(
        self,
        *,
        model: Model | None = None,
        search_factory: SearchFactory | None = None,
        playbook: Playbook | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._model = model
        self._search_factory = search_factory
        self._playbook = playbook
        self._clock = clock

    async def __call__(self, request: ReplyRequest) -> AgentReply:
        return await self.reply(
            session=request.session,
            draft=request.draft,
            settings=request.resources.settings,
            conversation=request.conversation,
            customer=request.customer,
            new_messages=request.new_messages,
            redis=request.resources.redis,
            deadline=request.deadline,
            usage=request.usage,
        )

    def playbook(self, settings: Settings) -> Playbook:
        return self._playbook or load_playbook(settings.conversation.playbook_path or None)

    def model(self, settings: Settings) -> Model:
        return self._model or model_for(settings.llm)

    async def reply(
        self,
        *,
        session: AsyncSession,
        settings: Settings,
        conversation: Conversation,
        customer: Customer,
        new_messages: Sequence[Message],
        redis: Redis | None = None,
        deadline: float | None = None,
        usage: LLMUsage | None = None,
        draft: Draft | None = None,
    ) -> AgentReply:
        """The reply to `new_messages`. LLM requests end at `deadline` (loop time; then the offline responder
        answers) and are counted into `usage`. `draft`: the turn's (its `session` is `session`); None: direct."""
        draft = draft or Draft.direct(session)
        started = time.perf_counter()
        await draft.enter()
        playbook = self.playbook(settings)
        pii = PiiMasker(
            conversation.pii_map,
            phones=PhoneDetector(settings.phone_default_region, exempt=playbook.company.phones),
            skus=await repository.skus_with_digits(session, min_digits=SKU_MIN_DIGITS),
        )
        language = conversation_language(
            [message_text(message) for message in new_messages],
            current=conversation.language,
            default=playbook.default_language,
        )
        conversation.language = language
        customer.language = language
        profile = await repository.customer_profile(session, customer, conversation)
        history = await load_history(session, conversation, new_messages=new_messages, pii=pii)
        memory = await recall_for_turn(
            session, settings, customer, conversation, " ".join(message_text(message) for message in new_messages)
        )
        deps = AgentDeps(
            session=session,
            settings=settings,
            playbook=playbook,
            conversation=conversation,
            customer=customer,
            profile=profile,
            pii=pii,
            search=(
                self._search_factory(session, settings)
                if self._search_factory is not None
                else hybrid_search(session, settings, redis=redis)
            ),
            language=language,
            now=self._clock(),
            draft=draft,
            memories=memory.facts,
            last_product=memory.last_product,
        )
        prompt = turn_prompt(new_messages, pii, dict(turn_context(deps)))
        await draft.release()  # the model thinks without a transaction; each tool call is a step of its own
        try:
            run = await self._run(deps, prompt, history, settings, deadline=deadline, usage=usage)
            reply_text = pii.unmask(run.text)
        finally:
            # New placeholders must survive the turn so later turns (and the reply) resolve the same way.
            conversation.pii_map = pii.mapping
        await draft.enter()
        await session.flush()
        message_id = new_messages[-1].id if new_messages else None

        async def remember(target: AsyncSession) -> None:
            await remember_turn(target, settings, customer, conversation, run.messages, message_id=message_id)

        # Memory is stored once the reply is committed (a withdrawn draft's tool results are not facts).
        await draft.after_commit(remember)
        reply = _turn_record(run, reply_text, deps, started=started, primary=self.primary_name(settings))
        if run.outcome == "answered" and not reply.handoff:
            # The provider fetches a quote's signed link now, whatever clock the agent runs on.
            media = await reply_media(session, settings, run.messages, reply_text, now=utcnow())
            reply = replace(reply, media=media)
        log.info(
            "agent.turn",
            conversation=deps.conversation_id,
            outcome=run.outcome,
            model=reply.model,
            fallback=reply.fallback_used,
            tools=len(reply.tool_calls),
            latency_ms=reply.latency_ms,
            stage=conversation.sales_stage.value,
        )
        return reply

    def primary_name(self, settings: Settings) -> str:
        if self._model is not None:
            return self._model.model_name
        names = llm_names(settings.llm)
        return names[0] if names else OFFLINE_MODEL_NAME

    async def _run(
        self,
        deps: AgentDeps,
        prompt: Sequence[Any],
        history: list[ModelMessage],
        settings: Settings,
        *,
        deadline: float | None,
        usage: LLMUsage | None,
    ) -> _RunResult:
        limit = settings.llm.max_requests_per_turn
        limits = UsageLimits(request_limit=limit, tool_calls_limit=limit * TOOL_CALLS_PER_REQUEST)
        known = {id(message) for message in history}
        messages: list[ModelMessage] = []
        model = ReleasingModel(metered(self.model(settings)), deps.draft)
        with turn_scope(deadline=deadline, usage=usage), capture_run_messages() as captured:
            try:
                result = await sales_agent.run(
                    prompt, message_history=history, deps=deps, model=model, usage_limits=limits
                )
                return _RunResult(result.output, result.new_messages(), "answered")
            except UsageLimitExceeded:
                messages = [message for message in captured if id(message) not in known]
                log.warning("agent.usage_limit", conversation=deps.conversation_id, limit=limit)
                await self._hand_over(deps, "the assistant hit its per-turn limit; please take over")
                return _RunResult(deps.playbook.messages.handoff.get(deps.language), messages, "usage_limit")
            except (ModelAPIError, FallbackExceptionGroup):
                messages = [message for message in captured if id(message) not in known]
                log.exception("agent.models_unavailable", conversation=deps.conversation_id)
                await self._hand_over(deps, "no language model could answer; please take over")
                return _RunResult(deps.playbook.messages.unavailable.get(deps.language), messages, "unavailable")
            except UnexpectedModelBehavior:
                messages = [message for message in captured if id(message) not in known]
                log.warning(
                    "agent.unsafe_draft",
                    conversation=deps.conversation_id,
                    grounding_retries=deps.turn.grounding_retries,
                    leak_retries=deps.turn.leak_retries,
                )
                if deps.turn.handoff:
                    return _RunResult(deps.playbook.messages.handoff.get(deps.language), messages, "unsafe_draft")
                return _RunResult(deps.playbook.messages.safe_answer.get(deps.language), messages, "unsafe_draft")

    async def _hand_over(self, deps: AgentDeps, reason: str) -> None:
        if deps.turn.handoff:
            return
        await deps.draft.enter()
        async with deps.session.begin_nested():
            await hand_to_human(deps, reason)


def _tool_calls(messages: Sequence[ModelMessage]) -> list[dict[str, Any]]:
    """Each tool call of the turn: name, arguments as the model sent them (masked) and the outcome."""
    calls: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                record: dict[str, Any] = {"tool": part.tool_name, "args": part.args_as_dict(), "outcome": "pending"}
                calls.append(record)
                by_id[part.tool_call_id] = record
            elif isinstance(part, ToolReturnPart) and part.tool_call_id in by_id:
                record = by_id[part.tool_call_id]
                status = part.metadata.get("status") if isinstance(part.metadata, dict) else None
                if part.outcome != "success":
                    record["outcome"] = part.outcome
                elif status in ("refused", "failed", "not_found"):
                    record["outcome"] = status
                else:
                    record["outcome"] = "ok"
    return calls


def _turn_record(run: _RunResult, text: str, deps: AgentDeps, *, started: float, primary: str) -> AgentReply:
    responses = [message for message in run.messages if isinstance(message, ModelResponse)]
    tokens_in = tokens_out = 0
    cost = Decimal(0)
    fallback_used = False
    for response in responses:
        if response.failed_attempts:
            fallback_used = True
        if response.model_name == OFFLINE_MODEL_NAME:
            continue  # the offline responder uses no tokens
        tokens_in += response.usage.input_tokens
        tokens_out += response.usage.output_tokens
        if response.usage.cost is not None:
            cost += Decimal(response.usage.cost)
    answered_by = next((r.model_name for r in reversed(responses) if r.model_name), None)
    if run.outcome == "unavailable":
        fallback_used = True
    model = answered_by or primary
    if answered_by is not None and answered_by != primary:
        fallback_used = True
    return AgentReply(
        text=text,
        model=model if run.outcome != "unavailable" else "none",
        fallback_used=fallback_used,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=cost,
        latency_ms=int((time.perf_counter() - started) * 1000),
        tool_calls=_tool_calls(run.messages),
        handoff=deps.turn.handoff,
    )


_default_service = SalesAgentService()


async def generate_reply(request: ReplyRequest) -> AgentReply:
    """The agent's `ReplyGenerator`: the configured model chain, playbook and catalog search."""
    return await _default_service(request)
