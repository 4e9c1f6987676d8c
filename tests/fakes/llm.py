"""A recording OpenAI-compatible LLM server (`POST {base}/chat/completions`) for tests with real worker processes.

What it answers depends on the requested model name (`behaviours`): `ok` (a short scripted reply), `500`,
`429`, `timeout` (no answer until the client gives up) or `garbage` (200 with a body that is not a completion).
On top of that:

- `latency` delays every answer, `slow_when` delays answers whose prompt contains a marker;
- `scripts` make the model "obey" a customer: a script matches a substring of a customer message and plays
  its steps in order (tool calls, then a final text), one step per model request after that message, so a
  prompt-injection attack can be carried out exactly as the attacker asked. A final text may contain
  `{system}` (the instructions the model received) and `{context}` (every message it was shown); a string
  argument of a tool call may be `{prompt}` (the latest customer text: a search for what the customer wrote).

Every request is recorded (`calls`) with the model, the answer's status, the system prompt and the customer
text the model saw, so tests can check which model answered and that nothing leaked into a prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.fakes.server import local_server, serve_in_thread

DEFAULT_REPLY = "Thank you for your message! I am checking this for you and will help you right away."


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]


# One step of a script: tool calls (the model wants them run) or the final text.
Step = list[ToolCall] | str


@dataclass(frozen=True)
class Script:
    trigger: str
    steps: list[Step]


@dataclass(frozen=True)
class LLMCall:
    model: str
    at: float
    status: int
    system: str
    # Text of every user/tool message of the request, joined (what the model could read).
    context: str
    # The latest customer text (the last user message).
    prompt: str
    tools: tuple[str, ...]
    # What the fake answered: the tool calls it asked for, or its text.
    tool_calls: tuple[str, ...] = ()
    answer: str = ""


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else json.dumps(content)


@dataclass
class FakeLLM:
    behaviours: dict[str, str] = field(default_factory=dict)
    default_behaviour: str = "ok"
    reply: str = DEFAULT_REPLY
    # Append what the reply answers (the latest customer text, digits removed) so tests can tell replies apart.
    echo_prompt: bool = False
    latency: float = 0.0
    slow_when: dict[str, float] = field(default_factory=dict)
    # How long a `timeout` answer stalls (the client's request timeout is shorter).
    stall_seconds: float = 60.0
    scripts: list[Script] = field(default_factory=list)
    calls: list[LLMCall] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answered_by(self, model: str) -> int:
        return sum(1 for call in self.calls if call.model == model and call.status == 200)

    def _script(self, messages: list[dict[str, Any]]) -> tuple[Script, int] | None:
        for script in self.scripts:
            for index in range(len(messages) - 1, -1, -1):
                message = messages[index]
                if message.get("role") == "user" and script.trigger in _text(message.get("content")):
                    done = sum(1 for later in messages[index + 1 :] if later.get("role") == "assistant")
                    return script, done
        return None

    def _answer(self, body: dict[str, Any], system: str, context: str, prompt: str) -> dict[str, Any]:
        messages: list[dict[str, Any]] = body.get("messages", [])
        found = self._script(messages)
        if found is None:
            users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
            said = "".join(ch for ch in (users[-1] if users else "") if not ch.isdigit())
            return {"role": "assistant", "content": f"{self.reply} (re: {said})" if self.echo_prompt else self.reply}
        script, done = found
        step: Step = script.steps[min(done, len(script.steps) - 1)]
        if isinstance(step, str):
            return {"role": "assistant", "content": step.replace("{system}", system).replace("{context}", context)}
        offered = {tool.get("function", {}).get("name") for tool in body.get("tools", [])}
        # An obedient model calls what the attacker asked for, offered or not (the agent must refuse the rest).
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(
                            {key: prompt if value == "{prompt}" else value for key, value in call.args.items()},
                            ensure_ascii=False,
                        ),
                    },
                }
                for call in step
            ]
            or [{"id": "call_none", "type": "function", "function": {"name": next(iter(offered)), "arguments": "{}"}}],
        }

    async def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = str(body.get("model", ""))
        messages: list[dict[str, Any]] = body.get("messages", [])
        system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
        context = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("user", "tool"))
        users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
        prompt = users[-1] if users else ""
        tools = tuple(str(t.get("function", {}).get("name")) for t in body.get("tools", []))
        behaviour = self.behaviours.get(model, self.default_behaviour)
        delay = self.latency + max((d for marker, d in self.slow_when.items() if marker in context), default=0.0)
        status, payload = 200, {}
        message: dict[str, Any] = {}
        if behaviour == "500":
            status, payload = 500, {"error": {"message": "internal error", "type": "server_error"}}
        elif behaviour == "429":
            status, payload = 429, {"error": {"message": "rate limited", "type": "rate_limit_exceeded"}}
        elif behaviour == "timeout":
            delay = max(delay, self.stall_seconds)
            status, payload = 504, {"error": {"message": "gateway timeout", "type": "timeout"}}
        elif behaviour == "garbage":
            payload = {"unexpected": True}
        else:
            message = self._answer(body, system, context, prompt)
            payload = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220},
            }
        # Recorded when the request arrives (a client that times out never sees the answer).
        self.calls.append(
            LLMCall(
                model=model,
                at=time.time(),
                status=status,
                system=system,
                context=context,
                prompt=prompt,
                tools=tools,
                tool_calls=tuple(c["function"]["name"] for c in message.get("tool_calls") or []),
                answer=str(message.get("content") or ""),
            )
        )
        if delay:
            await asyncio.sleep(delay)
        return status, payload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            event = await receive()
            raw += event.get("body", b"")
            if not event.get("more_body"):
                break
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            status, payload = 404, {"error": {"message": "not found"}}
        else:
            try:
                status, payload = await self.respond(json.loads(raw))
            except (ValueError, KeyError, TypeError) as exc:
                status, payload = 400, {"error": {"message": f"bad request: {exc}"}}
            except asyncio.CancelledError:
                return  # the client gave up waiting (a timeout scenario): nobody is left to answer
        data = json.dumps(payload).encode()
        with contextlib.suppress(OSError):
            await send(
                {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": data})

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeLLM]:
        async with local_server(self) as port:
            self.port = port
            yield self

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeLLM]:
        with serve_in_thread(self.serving, name="fake-llm") as server:
            yield server
