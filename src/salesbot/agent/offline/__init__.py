"""The offline responder: a deterministic sales assistant built as a pydantic-ai `FunctionModel`.

It is the model when no LLM is configured and the last link of every fallback chain. It works like an LLM
would, through the same agent: it reads the turn (the customer's masked text and the turn context that the
service attaches as metadata, plus the conversation so far), calls the same tools in rounds (tools that unlock
with a stage change are called in the next round), and composes the answer only from tool results, so every
price and stock figure it states is grounded by construction.

- `intents`: what a message says (intents, SKUs, quantities, budget, category, ordinals, named products);
- `reading`: the run so far (this turn's tool results, the products of the last reply, the stated need);
- `planner`: the next tool calls, and what their results settle (chosen, recommended, compared products);
- `composer`: the answer, in the customer's language from `languages/*.yaml` (English where a text is missing),
  with the playbook's `offline_texts` taking precedence.
"""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from salesbot.agent.offline.composer import compose
from salesbot.agent.offline.intents import parse_turn
from salesbot.agent.offline.lexicon import text
from salesbot.agent.offline.planner import plan
from salesbot.agent.offline.reading import called, current_turn, outcomes, remember

OFFLINE_MODEL_NAME = "offline"

__all__ = ["OFFLINE_MODEL_NAME", "offline_model", "respond"]


async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """One model step: the next batch of tool calls, or the final answer."""
    current = current_turn(messages)
    if current is None:
        # Not a turn of the sales service (no turn context): answer generically rather than guess.
        return ModelResponse(parts=[TextPart(text("fallback", "en"))], model_name=OFFLINE_MODEL_NAME)
    index, customer_text, context = current
    turn = parse_turn(customer_text, context)
    remember(turn, messages, index)
    results = outcomes(messages, index)
    available = {tool.name for tool in info.function_tools}
    calls = plan(turn, results, called(messages, index), available)
    if calls:
        return ModelResponse(parts=list(calls), model_name=OFFLINE_MODEL_NAME)
    return ModelResponse(parts=[TextPart(compose(turn, results))], model_name=OFFLINE_MODEL_NAME)


def offline_model() -> FunctionModel:
    """The offline responder as a pydantic-ai model."""
    return FunctionModel(respond, model_name=OFFLINE_MODEL_NAME)
