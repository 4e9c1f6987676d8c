"""What an alert says, the contract every alert channel implements, and its error taxonomy.

A channel only knows its wire format; `delivery` decides between retry and failure from the error class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from salesbot.models import AlertChannel, AlertKind

TITLES: dict[AlertKind, str] = {
    AlertKind.PERSON_REQUESTED: "Customer asked for a person",
    AlertKind.HANDOFF: "Chat handed to a manager",
    AlertKind.DELIVERY_FAILED: "A message could not be delivered",
    AlertKind.NEEDS_ATTENTION: "Conversation needs attention",
    AlertKind.QUOTE_ABOVE_THRESHOLD: "Large quote created",
    AlertKind.PAYMENT_RECEIVED: "Payment received",
}


@dataclass(frozen=True)
class AlertMessage:
    """An alert as the team reads it: no raw phone number, no message text beyond `excerpt`."""

    alert_id: int
    event_key: str
    kind: AlertKind
    conversation_id: int
    # The customer's masked phone (`+97•••••••67`) and name, when known.
    customer: str
    channel: str
    excerpt: str | None
    # The admin's page of the conversation (under PUBLIC_BASE_URL).
    link: str
    created_at: datetime

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    def text(self) -> str:
        """The plain-text body every channel sends (the link is in the text itself)."""
        lines = [f"{self.title}: conversation #{self.conversation_id}", f"Customer: {self.customer} ({self.channel})"]
        if self.excerpt:
            lines.append(f"“{self.excerpt}”")
        lines.append(self.link)
        return "\n".join(lines)


class AlertError(Exception):
    """A channel could not deliver an alert."""


class RetryableAlertError(AlertError):
    """Network failure, 5xx, 429: the same request may succeed later (not before `retry_after` seconds)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentAlertError(AlertError):
    """The channel refused the alert for good (bad token, unknown chat, rejected recipient)."""


class AlertSender(Protocol):
    @property
    def channel(self) -> AlertChannel: ...

    async def send(self, message: AlertMessage, *, attempted_before: datetime | None) -> None:
        """Deliver `message`; `attempted_before` is set when an earlier attempt may have gone through (the
        channel passes the same idempotency id where the receiver can use one)."""
        ...

    async def check(self) -> str:
        """A harmless probe of the configuration for `salesbot check` (never an alert); raises `AlertError`."""
        ...
