"""The last check before a message leaves: may it be sent, to whom, and through which door.

Run right before every provider call (a manager may take the chat, or the customer opt out, while a reply
waits), on data read in the same short transaction that records the attempt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from salesbot.conversations.ownership import human_owns
from salesbot.models import Author, Conversation, ConversationStatus, Customer, Message

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
# Idempotency-key prefix of opt-out/opt-in confirmations: the one automated message an opted-out customer gets.
CONSENT_KEY_PREFIX = "consent:"
# Idempotency-key prefix of automated follow-ups (reminders, nudges): pointless once the customer wrote again.
FOLLOW_UP_KEY_PREFIX = "followup:"


class Verdict(enum.Enum):
    SEND = "send"
    CANCEL = "cancel"
    WINDOW_CLOSED = "window_closed"


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    reason: str = ""


def is_consent_confirmation(message: Message) -> bool:
    return bool(message.idempotency_key and message.idempotency_key.startswith(CONSENT_KEY_PREFIX))


def is_follow_up(message: Message) -> bool:
    return bool(message.idempotency_key and message.idempotency_key.startswith(FOLLOW_UP_KEY_PREFIX))


def check(
    message: Message,
    conversation: Conversation,
    customer: Customer,
    *,
    now: datetime,
    manager_wrote_after: bool,
    customer_wrote_after: bool = False,
    last_inbound_at: datetime | None,
    window_applies: bool,
) -> GateResult:
    """Bot replies need the bot to own a live chat nobody answered meanwhile; automated messages (bot, system)
    need a customer who has not opted out; everything needs an open 24-hour window where the channel has one.
    Manager messages are not automated: they pass ownership and consent checks. A follow-up whose customer wrote
    after it was written is dropped: the turn answering that message supersedes the reminder.
    """
    if message.author is Author.BOT:
        if human_owns(conversation, now):
            return GateResult(Verdict.CANCEL, "human_owner")
        if manager_wrote_after:
            return GateResult(Verdict.CANCEL, "manager_replied")
        if conversation.status is ConversationStatus.CLOSED:
            return GateResult(Verdict.CANCEL, "conversation_closed")
        if customer_wrote_after and is_follow_up(message):
            return GateResult(Verdict.CANCEL, "customer_replied")
    automated = message.author in (Author.BOT, Author.SYSTEM)
    if automated and customer.opted_out_at is not None and not is_consent_confirmation(message):
        return GateResult(Verdict.CANCEL, "opted_out")
    if window_applies and (last_inbound_at is None or now - last_inbound_at > CUSTOMER_SERVICE_WINDOW):
        return GateResult(Verdict.WINDOW_CLOSED, "window_closed")
    return GateResult(Verdict.SEND)
