"""Conversation history for the model: the last messages verbatim plus a rolling summary of older ones.

The summary is built deterministically (no extra LLM call): when messages fall out of the verbatim window
they are folded into `conversation.summary` as short "who: what" lines, oldest dropped first, and
`facts["summarized_until"]` remembers how far. So a long chat keeps a bounded prompt. Everything handed to
the model is PII-masked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextContent, TextPart, UserPromptPart
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent import repository
from salesbot.agent.pii import PiiMasker
from salesbot.models import Author, Conversation, Direction, Message

HISTORY_WINDOW = 12
MAX_MESSAGE_CHARS = 1500
SUMMARY_LINE_CHARS = 160
SUMMARY_MAX_CHARS = 1500
# Lines at the start of the summary that are never dropped (the conversation's opening).
SUMMARY_HEAD_LINES = 3
# Metadata on customer text parts (never sent to the model): marks customer text (as opposed to framework notes),
# and carries the turn's context on the current turn's prompt (the offline responder reads it).
CUSTOMER_KEY = "salesbot_customer"
TURN_KEY = "salesbot_turn"


def message_text(message: Message) -> str:
    text = (message.text or "").strip()
    if not text and message.content_type != "text":
        return f"(sent a {message.content_type})"
    if text and message.content_type not in ("text", ""):
        return f"(sent a {message.content_type}) {text}"
    return text


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _speaker(message: Message) -> str | None:
    if message.direction is Direction.INBOUND:
        return "Customer"
    if message.author is Author.MANAGER:
        return "Manager"
    if message.author is Author.BOT:
        return "Assistant"
    return None


def fold_summary(summary: str | None, messages: Sequence[Message]) -> str:
    """The summary with `messages` appended as short "who: what" lines, bounded in size.

    The first lines (how the conversation started: usually the customer's need) are kept; when the summary
    grows too long, the oldest lines after them are dropped, marked by a "…" line.
    """
    head: list[str] = []
    tail: list[str] = []
    for line in (summary or "").splitlines():
        if line == "…":
            head, tail = tail, []
        elif line.strip():
            tail.append(line)
    for message in messages:
        speaker = _speaker(message)
        text = " ".join(message_text(message).split())
        if speaker and text:
            limit = SUMMARY_LINE_CHARS if speaker == "Customer" else SUMMARY_LINE_CHARS // 2
            tail.append(f"{speaker}: {_truncate(text, limit)}")
    if not head:
        head, tail = tail[:SUMMARY_HEAD_LINES], tail[SUMMARY_HEAD_LINES:]
    budget = SUMMARY_MAX_CHARS - sum(len(line) + 1 for line in head) - 2
    trimmed = False
    while tail and sum(len(line) + 1 for line in tail) > budget:
        tail.pop(0)
        trimmed = True
    if trimmed or (summary and "…" in summary.splitlines()):
        return "\n".join([*head, "…", *tail])
    return "\n".join([*head, *tail])


def to_model_messages(messages: Sequence[Message], pii: PiiMasker) -> list[ModelMessage]:
    """Stored messages as model history: customer -> request, bot/manager -> response (same roles merged)."""
    result: list[ModelMessage] = []
    for message in messages:
        speaker = _speaker(message)
        text = message_text(message)
        if speaker is None or not text:
            continue
        masked = pii.mask(_truncate(text, MAX_MESSAGE_CHARS))
        if speaker == "Customer":
            part = UserPromptPart([TextContent(masked, metadata={CUSTOMER_KEY: True})])
            if result and isinstance(result[-1], ModelRequest):
                result[-1] = ModelRequest(parts=[*result[-1].parts, part])
            else:
                result.append(ModelRequest(parts=[part]))
        else:
            content = f"(a manager wrote) {masked}" if speaker == "Manager" else masked
            if result and isinstance(result[-1], ModelResponse):
                previous = result[-1].parts[0]
                assert isinstance(previous, TextPart)
                result[-1] = ModelResponse(parts=[TextPart(previous.content + "\n" + content)])
            else:
                result.append(ModelResponse(parts=[TextPart(content)]))
    return result


async def load_history(
    session: AsyncSession,
    conversation: Conversation,
    *,
    new_messages: Sequence[Message],
    pii: PiiMasker,
    window: int = HISTORY_WINDOW,
) -> list[ModelMessage]:
    """History before this turn's messages; folds what leaves the window into the summary (flush pending)."""
    facts: dict[str, Any] = dict(conversation.facts or {})
    new_ids = {message.id for message in new_messages}
    before_id = min(new_ids) if new_ids else None
    rows = [
        row
        for row in await repository.messages_after(
            session, conversation.id, after_id=int(facts.get("summarized_until", 0)), before_id=before_id
        )
        if row.id not in new_ids
    ]
    if len(rows) > window:
        older, rows = rows[: len(rows) - window], rows[len(rows) - window :]
        conversation.summary = fold_summary(conversation.summary, older)
        conversation.facts = {**facts, "summarized_until": older[-1].id}
    return to_model_messages(rows, pii)


def turn_prompt(new_messages: Sequence[Message], pii: PiiMasker, context: dict[str, Any]) -> list[TextContent]:
    """The current turn's customer messages (masked) as one prompt, with the turn context as metadata."""
    text = "\n".join(message_text(message) for message in new_messages if message_text(message))
    masked = pii.mask(_truncate(text, MAX_MESSAGE_CHARS * 2)) or "(empty message)"
    return [TextContent(masked, metadata={CUSTOMER_KEY: True, TURN_KEY: context})]
