"""Scripted models for agent tests: `FunctionModel`s that play a fixed sequence of tool calls and answers.

They record every request (messages and instructions) so tests can assert what the model was shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from pydantic_ai.models.function import AgentInfo, FunctionModel

Step = str | Sequence[tuple[str, dict[str, Any]]] | Callable[[list[ModelMessage], AgentInfo], ModelResponse]


def call(tool: str, **args: Any) -> tuple[str, dict[str, Any]]:
    return tool, args


@dataclass
class Seen:
    messages: list[ModelMessage]
    instructions: str
    tools: list[str]

    def text(self) -> str:
        """Everything this request showed the model, as one string."""
        return self.instructions + "\n" + "\n".join(render(message) for message in self.messages)


def render(message: ModelMessage) -> str:
    chunks: list[str] = []
    for part in message.parts:
        if isinstance(part, UserPromptPart):
            content = part.content
            chunks.append(
                content
                if isinstance(content, str)
                else " ".join(item.content if isinstance(item, TextContent) else str(item) for item in content)
            )
        elif isinstance(part, ToolReturnPart):
            chunks.append(part.model_response_str())
        elif isinstance(part, TextPart):
            chunks.append(part.content)
        elif isinstance(part, ToolCallPart):
            chunks.append(f"{part.tool_name}({part.args_as_json_str()})")
        else:
            chunks.append(str(getattr(part, "content", "")))
    return "\n".join(chunks)


@dataclass
class Script:
    """Plays `steps` in order, one per model request; the last step repeats when the script runs out."""

    steps: list[Step]
    name: str = "scripted-llm"
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._position = 0

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(Seen(list(messages), info.instructions or "", [tool.name for tool in info.function_tools]))
        step = self.steps[min(self._position, len(self.steps) - 1)]
        self._position += 1
        if callable(step):
            return step(messages, info)
        if isinstance(step, str):
            return ModelResponse(parts=[TextPart(step)])
        return ModelResponse(parts=[ToolCallPart(tool, args) for tool, args in step])

    @property
    def model(self) -> FunctionModel:
        return FunctionModel(self, model_name=self.name)

    def tool_results(self) -> list[ToolReturnPart]:
        """Every tool result the model was shown (from the last request, which holds the whole run)."""
        if not self.seen:
            return []
        return [
            part
            for message in self.seen[-1].messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
