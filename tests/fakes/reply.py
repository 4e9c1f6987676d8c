"""A recording test double at the agent boundary (`ReplyGenerator`): what each turn asked, scripted answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from salesbot.agent.reply import AgentReply, ReplyRequest


@dataclass(frozen=True)
class Call:
    conversation_id: int
    texts: tuple[str, ...]
    content_types: tuple[str, ...]


def echo_reply(request: ReplyRequest) -> str:
    return "Answer to: " + " | ".join(message.text or f"<{message.content_type}>" for message in request.new_messages)


@dataclass
class RecordingReplyGenerator:
    """Records every call; `hold()` makes the next call wait (after recording) until `release()`."""

    reply: Callable[[ReplyRequest], str] = echo_reply
    handoff: bool = False
    fail_times: int = 0
    calls: list[Call] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    _gate: asyncio.Event | None = None
    running: int = 0
    max_running: int = 0

    def hold(self) -> None:
        self._gate = asyncio.Event()
        self.entered.clear()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def __call__(self, request: ReplyRequest) -> AgentReply:
        self.calls.append(
            Call(
                conversation_id=request.conversation.id,
                texts=tuple(m.text for m in request.new_messages),
                content_types=tuple(m.content_type for m in request.new_messages),
            )
        )
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            self.entered.set()
            gate = self._gate
            if gate is not None:
                await gate.wait()
            if self.fail_times > 0:
                self.fail_times -= 1
                raise RuntimeError("agent exploded (scripted)")
            return AgentReply(
                text=self.reply(request), model="test-double", tokens_in=10, tokens_out=5, handoff=self.handoff
            )
        finally:
            self.running -= 1
