"""Reading the run: the current turn, what this turn's tool calls returned, and what the conversation said before.

The offline responder is a pydantic-ai `FunctionModel`: every step it gets the whole message list (history,
the current prompt with the turn context as metadata, the tool calls and returns of this turn so far).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextContent,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from salesbot.agent.history import TURN_KEY
from salesbot.agent.offline.intents import PLACEHOLDER, Turn, find_category, find_quantity, find_skus, normalize
from salesbot.agent.turn_context import TurnContext

# How far back the conversation's earlier customer messages are read for the need (category, quantity).
EARLIER_MESSAGES = 6
_SKU_MENTION = re.compile(r"\((?:SKU|артикул|رمز)\s+([A-Za-z0-9-]+)\)")


@dataclass
class Outcome:
    """One tool call of this turn and what it returned."""

    tool: str
    args: dict[str, Any]
    status: str  # "ok", "refused", "not_found", "failed", "retried"
    data: dict[str, Any] = field(default_factory=dict[str, Any])


def current_turn(messages: Sequence[ModelMessage]) -> tuple[int, str, TurnContext] | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, ModelRequest):
            continue
        for part in message.parts:
            if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                for item in part.content:
                    if isinstance(item, TextContent) and isinstance(item.metadata, dict) and TURN_KEY in item.metadata:
                        context: TurnContext = item.metadata[TURN_KEY]
                        return index, item.content, context
    return None


def outcomes(messages: Sequence[ModelMessage], start: int) -> list[Outcome]:
    calls: dict[str, ToolCallPart] = {}
    found: list[Outcome] = []
    for message in messages[start + 1 :]:
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, ToolCallPart):
                    calls[part.tool_call_id] = part
        else:
            for request_part in message.parts:
                if not isinstance(request_part, ToolReturnPart):
                    continue
                call = calls.get(request_part.tool_call_id)
                args = call.args_as_dict() if call is not None else {}
                metadata = request_part.metadata if isinstance(request_part.metadata, dict) else {}
                if request_part.outcome != "success":
                    status = "retried" if request_part.outcome == "retried" else "failed"
                else:
                    status = str(metadata.get("status", "ok"))
                found.append(Outcome(request_part.tool_name, args, status, metadata))
    return found


def called(messages: Sequence[ModelMessage], start: int) -> list[ToolCallPart]:
    return [
        part
        for message in messages[start + 1 :]
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart)
    ]


def _texts(message: ModelMessage) -> list[str]:
    texts: list[str] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.content)
        elif isinstance(part, UserPromptPart):
            content = part.content
            if isinstance(content, str):
                texts.append(content)
            else:
                texts += [item.content for item in content if isinstance(item, TextContent)]
    return texts


def remember(turn: Turn, messages: Sequence[ModelMessage], start: int) -> None:
    """Fill in what the conversation said before: the products of the last reply, the customer's stated need."""
    shown = {sku.upper(): sku for sku in turn.context["shown_skus"]}
    for message in reversed(messages[:start]):
        if isinstance(message, ModelResponse):
            reply = "\n".join(_texts(message))
            mentioned = [match.group(1) for match in _SKU_MENTION.finditer(reply)] or find_skus(reply)
            turn.previous_skus = list(dict.fromkeys(shown[sku.upper()] for sku in mentioned if sku.upper() in shown))
            break
    if not turn.previous_skus and turn.context["shown_skus"]:
        turn.previous_skus = list(turn.context["shown_skus"][-3:])
    earlier = [
        normalize(text, turn.language)
        for message in reversed(messages[:start])
        if isinstance(message, ModelRequest)
        for text in reversed(_texts(message))
    ][:EARLIER_MESSAGES]
    if turn.context.get("need"):
        earlier.append(normalize(str(turn.context["need"]), turn.language))
    for text in earlier:
        category = find_category(text)
        if category is not None:
            turn.remembered_category = category
            turn.remembered_query = PLACEHOLDER.sub(" ", text)[:200].strip()
            turn.remembered_quantity = find_quantity(text)
            break
