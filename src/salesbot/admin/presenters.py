"""What the conversation page shows: the transcript as chat bubbles with delivery ticks, and the turn records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from salesbot.models import Author, DeliveryStatus, Message

# (symbol, description) per delivery status, as WhatsApp users know them.
TICKS: dict[DeliveryStatus, tuple[str, str]] = {
    DeliveryStatus.PENDING: ("🕓", "waiting to be sent"),
    DeliveryStatus.SENT: ("✓", "sent"),
    DeliveryStatus.DELIVERED: ("✓✓", "delivered"),
    DeliveryStatus.READ: ("✓✓", "read"),
    DeliveryStatus.FAILED: ("⚠", "not delivered"),
    DeliveryStatus.CANCELLED: ("⊘", "cancelled before sending"),
    DeliveryStatus.UNCONFIRMED: ("?", "may have been sent; not resent: check with the customer"),
}
AUTHOR_LABELS = {Author.CUSTOMER: "Customer", Author.BOT: "Bot", Author.MANAGER: "Manager", Author.SYSTEM: "System"}


@dataclass(frozen=True)
class TurnRecord:
    message_id: int
    at: datetime
    model: str | None
    fallback_used: bool | None
    tokens_in: int | None
    tokens_out: int | None
    cost: Decimal | None
    latency_ms: int | None
    tool_calls: list[str]


@dataclass(frozen=True)
class Bubble:
    message_id: int
    author: Author
    label: str
    text: str
    at: datetime
    status: DeliveryStatus | None
    tick: str
    tick_title: str
    error: str | None
    content_type: str
    media: list[dict[str, Any]]
    turn: TurnRecord | None

    @property
    def css(self) -> str:
        classes = [f"sb-bubble sb-{self.author.value}"]
        if self.status in (DeliveryStatus.FAILED, DeliveryStatus.UNCONFIRMED):
            classes.append("sb-failed")
        if self.status is DeliveryStatus.CANCELLED:
            classes.append("sb-cancelled")
        if self.status is DeliveryStatus.READ:
            classes.append("sb-read")
        return " ".join(classes)


def describe_tool_call(call: dict[str, Any]) -> str:
    """`create_quote(items=[...]) → refused` from a turn record's tool call, shortened for a table cell."""
    name = str(call.get("tool") or call.get("name") or "?")
    args = call.get("args")
    if isinstance(args, dict):
        rendered = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in args.items())
    else:
        rendered = "" if args is None else str(args)
    if len(rendered) > 160:
        rendered = rendered[:157] + "…"
    outcome = call.get("outcome")
    return f"{name}({rendered})" + (f" → {outcome}" if outcome and outcome != "ok" else "")


def turn_record(message: Message) -> TurnRecord | None:
    if message.author is not Author.BOT or (message.model is None and message.latency_ms is None):
        return None
    return TurnRecord(
        message_id=message.id,
        at=message.created_at,
        model=message.model,
        fallback_used=message.fallback_used,
        tokens_in=message.tokens_in,
        tokens_out=message.tokens_out,
        cost=message.cost,
        latency_ms=message.latency_ms,
        tool_calls=[describe_tool_call(call) for call in message.tool_calls or [] if isinstance(call, dict)],
    )


def bubbles(messages: Sequence[Message]) -> list[Bubble]:
    result = []
    for message in messages:
        tick, title = TICKS.get(message.delivery_status, ("", "")) if message.delivery_status else ("", "")
        result.append(
            Bubble(
                message_id=message.id,
                author=message.author,
                label=AUTHOR_LABELS[message.author],
                text=message.text,
                at=message.sent_at or message.created_at,
                status=message.delivery_status,
                tick=tick,
                tick_title=title,
                error=message.error,
                content_type=message.content_type,
                media=[item for item in message.media or [] if isinstance(item, dict)],
                turn=turn_record(message),
            )
        )
    return result
