"""The model chain: LLM_MODEL, then LLM_FALLBACK_MODELS in order, then the offline responder (always last).

Every LLM is reached through an OpenAI-compatible chat-completions API (OpenRouter, OpenAI, vLLM, Ollama) at
LLM_BASE_URL with LLM_API_KEY. Each request gets a short deadline and no SDK retries, so an error, a timeout or
a 429 moves on to the next model at once instead of retrying the same one. Within one turn, an LLM that failed
is not asked again: a turn takes several model requests, and waiting for a dead LLM's timeout on each of them
would outlast the worker's job timeout. The worst case for a turn is one timeout per configured LLM.

The turn's budget (TURN_BUDGET_SECONDS) bounds the whole chain: every LLM request is cut at the turn's deadline
and, once it has passed, LLMs are not asked at all, so the offline responder (last in the chain) answers. Every
request to an LLM is counted into the turn's `LLMUsage`, whether its draft is sent or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from pydantic_ai import ModelAPIError, UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from salesbot.agent.offline import OFFLINE_MODEL_NAME as OFFLINE_MODEL_NAME
from salesbot.agent.offline import offline_model
from salesbot.agent.reply import LLMUsage
from salesbot.kit.logging import get_logger
from salesbot.observability import metrics
from salesbot.settings import LLMSettings

log = get_logger(__name__)

_cache: dict[str, Model] = {}
_lock = threading.Lock()


@dataclass
class _TurnScope:
    # Names of the LLMs that failed during the turn.
    failed: set[str]
    # Loop time when the turn's budget runs out (None: no budget).
    deadline: float | None
    usage: LLMUsage


_scope: ContextVar[_TurnScope | None] = ContextVar("salesbot_turn_scope", default=None)


@contextmanager
def turn_scope(*, deadline: float | None = None, usage: LLMUsage | None = None) -> Iterator[LLMUsage]:
    """One agent turn: LLMs that fail inside it are skipped for the rest of it, no LLM request outlives
    `deadline`, and every LLM request is counted into `usage` (yielded)."""
    scope = _TurnScope(failed=set(), deadline=deadline, usage=usage if usage is not None else LLMUsage())
    token = _scope.set(scope)
    try:
        yield scope.usage
    finally:
        _scope.reset(token)


class Metered(WrapperModel):
    """Counts every request to the wrapped LLM into the turn's usage, the failed ones too (a request that timed
    out may still be billed; its tokens are unknown)."""

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        scope = _scope.get()
        try:
            response = await super().request(messages, model_settings, model_request_parameters)
        except BaseException:
            if scope is not None:
                scope.usage.add(model=None)
            raise
        if scope is not None and response.model_name != OFFLINE_MODEL_NAME:
            usage = response.usage
            scope.usage.add(
                model=response.model_name or self.model_name,
                tokens_in=usage.input_tokens,
                tokens_out=usage.output_tokens,
                cost=Decimal(usage.cost) if usage.cost is not None else None,
            )
        return response


def metered(model: Model) -> Model:
    """`model` with its LLM requests counted: the chain of `build_model` counts per LLM already."""
    if isinstance(model, Metered | SkipAfterFailure) or model.model_name == OFFLINE_MODEL_NAME:
        return model
    if isinstance(model, FallbackModel) and any(isinstance(inner, SkipAfterFailure) for inner in model.models):
        return model
    return Metered(model)


class SkipAfterFailure(WrapperModel):
    """An LLM that, once it failed in the current turn, fails at once for the rest of the turn, and whose requests
    end at the turn's deadline (`ModelAPIError` then, so the chain moves on to the offline responder).

    Any exception counts, including the cancellation by the request deadline (which `FallbackModel` turns into
    `ModelRequestTimeout` outside this wrapper). The skip raises `ModelAPIError`, so the chain moves on.
    """

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        scope = _scope.get()
        if scope is None:
            return await super().request(messages, model_settings, model_request_parameters)
        if self.model_name in scope.failed:
            raise ModelAPIError(self.model_name, "skipped: it already failed in this turn")
        remaining = None if scope.deadline is None else scope.deadline - asyncio.get_running_loop().time()
        if remaining is not None and remaining <= 0:
            raise ModelAPIError(self.model_name, "skipped: the turn's time budget is spent")
        try:
            async with asyncio.timeout(remaining):
                return await super().request(messages, model_settings, model_request_parameters)
        except TimeoutError as exc:
            scope.failed.add(self.model_name)
            log.warning("agent.llm_cut_by_turn_budget", model=self.model_name)
            await metrics.inc(metrics.LLM_FAILURES, model=self.model_name)
            raise ModelAPIError(self.model_name, "cut: the turn's time budget ran out") from exc
        except BaseException as exc:
            scope.failed.add(self.model_name)
            log.warning("agent.llm_failed", model=self.model_name)
            if isinstance(exc, Exception):  # not while being cancelled
                await metrics.inc(metrics.LLM_FAILURES, model=self.model_name)
            raise


def llm_names(llm: LLMSettings) -> list[str]:
    """The configured LLMs in the order they are tried (the offline responder is not among them)."""
    if llm.model.strip().lower() == OFFLINE_MODEL_NAME:
        return []
    names: list[str] = []
    for name in [llm.model, *llm.fallback_models]:
        name = name.strip()
        if name and name.lower() != OFFLINE_MODEL_NAME and name not in names:
            names.append(name)
    return names


def chat_model(name: str, llm: LLMSettings) -> OpenAIChatModel:
    """One configured LLM at LLM_BASE_URL: a short deadline and no SDK retries (the chain moves on instead)."""
    provider = OpenAIProvider(base_url=llm.base_url or None, api_key=llm.api_key.get_secret_value() or None)
    settings = ModelSettings(
        max_retries=0, timeout=llm.request_timeout_seconds, request_timeout=llm.request_timeout_seconds
    )
    return OpenAIChatModel(name, provider=provider, settings=settings)


def build_model(llm: LLMSettings) -> Model:
    """A new model chain for these settings (see `model_for` for the cached one)."""
    names = llm_names(llm)
    offline = offline_model()
    if not names:
        return offline
    api_key = llm.api_key.get_secret_value()
    if not llm.base_url and not api_key:
        log.error("agent.llm_misconfigured", detail="LLM_MODEL is set but neither LLM_BASE_URL nor LLM_API_KEY")
        return offline
    return model_chain([chat_model(name, llm) for name in names])


def model_chain(llms: list[Model]) -> Model:
    """The LLMs in order, each counted, skipped after a failure and cut at the turn's deadline, then the offline
    responder."""
    chain: list[Model] = [SkipAfterFailure(Metered(llm)) for llm in llms]
    # A 200 that is not a completion (a gateway's HTML page, an error object) is an LLM failure like a 500: move on.
    return FallbackModel(*chain, offline_model(), fallback_on=(ModelAPIError, UnexpectedModelBehavior))


def _cache_key(llm: LLMSettings) -> str:
    secret = hashlib.sha256(llm.api_key.get_secret_value().encode()).hexdigest()
    return "|".join([*llm_names(llm), llm.base_url, secret, str(llm.request_timeout_seconds)])


def model_for(llm: LLMSettings) -> Model:
    """The process-wide model chain for these settings (one HTTP client per provider, reused across turns)."""
    key = _cache_key(llm)
    with _lock:
        model = _cache.get(key)
        if model is None:
            model = build_model(llm)
            _cache[key] = model
        return model
