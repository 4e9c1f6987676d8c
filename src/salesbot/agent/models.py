"""The model chain: LLM_MODEL, then LLM_FALLBACK_MODELS in order, then the offline responder (always last).

Every LLM is reached through an OpenAI-compatible chat-completions API (OpenRouter, OpenAI, vLLM, Ollama) at
LLM_BASE_URL with LLM_API_KEY. Each request gets a short deadline and no SDK retries, so an error, a timeout or
a 429 moves on to the next model at once instead of retrying the same one. Within one turn, an LLM that failed
is not asked again: a turn takes several model requests, and waiting for a dead LLM's timeout on each of them
would outlast the worker's job timeout. The worst case for a turn is one timeout per configured LLM.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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
from salesbot.kit.logging import get_logger
from salesbot.settings import LLMSettings

log = get_logger(__name__)

_cache: dict[str, Model] = {}
_lock = threading.Lock()
# Names of the LLMs that failed during the current turn (None outside a turn).
_failed_this_turn: ContextVar[set[str] | None] = ContextVar("salesbot_failed_llms", default=None)


@contextmanager
def turn_scope() -> Iterator[None]:
    """One agent turn: LLMs that fail inside it are skipped for the rest of it."""
    token = _failed_this_turn.set(set())
    try:
        yield
    finally:
        _failed_this_turn.reset(token)


class SkipAfterFailure(WrapperModel):
    """An LLM that, once it failed in the current turn, fails at once for the rest of the turn.

    Any exception counts, including the cancellation by the request deadline (which `FallbackModel` turns into
    `ModelRequestTimeout` outside this wrapper). The skip raises `ModelAPIError`, so the chain moves on.
    """

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        failed = _failed_this_turn.get()
        if failed is not None and self.model_name in failed:
            raise ModelAPIError(self.model_name, "skipped: it already failed in this turn")
        try:
            return await super().request(messages, model_settings, model_request_parameters)
        except BaseException:
            if failed is not None:
                failed.add(self.model_name)
                log.warning("agent.llm_failed", model=self.model_name)
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
    chain: list[Model] = [SkipAfterFailure(chat_model(name, llm)) for name in names]
    # A 200 that is not a completion (a gateway's HTML page, an error object) is an LLM failure like a 500: move on.
    return FallbackModel(*chain, offline, fallback_on=(ModelAPIError, UnexpectedModelBehavior))


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
