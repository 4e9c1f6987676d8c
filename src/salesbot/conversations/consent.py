"""Opt-out and opt-in by keyword: deterministic code, never the agent's judgement.

A message that is exactly one of `OPT_OUT_KEYWORDS` (case-insensitive, surrounding whitespace and punctuation
ignored) opts the customer out: one confirmation, then no automated message at all. `OPT_IN_KEYWORDS` opts
back in. Keywords inside a longer message are ordinary text.

The inbox applies a STOP at once (`inbox.service`); the turn replays the burst's keywords (`replay`) to write
the confirmations and to decide what the agent answers.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from salesbot.models import Message
from salesbot.settings import ConversationSettings

_TRIM = " \t\r\n.!?¡¿。！？؟،,;:\"'«»()[]"


class Command(enum.Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip(_TRIM).casefold()


def classify(text: str, settings: ConversationSettings) -> Command | None:
    """The consent command a whole message expresses, if any."""
    normalized = _normalize(text)
    if not normalized:
        return None
    if normalized in {_normalize(keyword) for keyword in settings.opt_out_keywords}:
        return Command.OPT_OUT
    if normalized in {_normalize(keyword) for keyword in settings.opt_in_keywords}:
        return Command.OPT_IN
    return None


@dataclass
class Replay:
    """The burst's consent commands applied in order."""

    # Each command that changed the customer's state, with the message that gave it: one confirmation each.
    confirmations: list[tuple[Command, Message]] = field(default_factory=list)
    # Messages the agent should answer: those after the last state change, while opted in.
    agent_messages: list[Message] = field(default_factory=list)
    # Whether the burst changed the state, and the `opted_out_at` it leaves (the opting-out message's time).
    changed: bool = False
    opted_out_at: datetime | None = None


def replay(messages: Sequence[Message], settings: ConversationSettings, *, opted_out_at: datetime | None) -> Replay:
    """Apply the keywords of a burst (oldest first) starting from the customer's state before its first message.

    The inbox applies a STOP as it stores it, with `opted_out_at` = that message's time; so the customer was opted
    out before the burst only if `opted_out_at` is older than the burst's first message, and a STOP inside the
    burst is still replayed here to write its confirmation. Without a command in the burst the stored state
    stands (`changed` False), even if a STOP newer than the burst set it meanwhile.
    """
    opted_out = opted_out_at is not None and bool(messages) and opted_out_at < messages[0].created_at
    result = Replay(opted_out_at=opted_out_at)
    for message in messages:
        command = classify(message.text, settings)
        if command is Command.OPT_OUT:
            if not opted_out:
                opted_out = True
                result.confirmations.append((command, message))
                result.changed, result.opted_out_at = True, message.created_at
            result.agent_messages.clear()
        elif command is Command.OPT_IN and opted_out:
            opted_out = False
            result.confirmations.append((command, message))
            result.changed, result.opted_out_at = True, None
            # Messages before START were written while opted out; the agent answers what follows it.
            result.agent_messages.clear()
        elif not opted_out:
            result.agent_messages.append(message)
    return result


def _script(text: str) -> str:
    for char in text:
        if "\u0400" <= char <= "\u04ff":
            return "cyrillic"
        if "\u0600" <= char <= "\u06ff":
            return "arabic"
    return "latin"


_CONFIRMATIONS = {
    (Command.OPT_OUT, "latin"): "You have been unsubscribed and will not receive automated messages from us. "
    "Reply START to subscribe again.",
    (Command.OPT_OUT, "cyrillic"): "Вы отписались и больше не будете получать автоматические сообщения. "
    "Чтобы подписаться снова, отправьте START.",
    (Command.OPT_OUT, "arabic"): "تم إلغاء اشتراكك ولن تصلك رسائل آلية منا. أرسل START للاشتراك مجددًا.",
    (Command.OPT_IN, "latin"): "Welcome back! You are subscribed again. How can we help?",
    (Command.OPT_IN, "cyrillic"): "С возвращением! Вы снова подписаны. Чем можем помочь?",
    (Command.OPT_IN, "arabic"): "مرحبًا بعودتك! تم تفعيل اشتراكك مجددًا. كيف يمكننا مساعدتك؟",
}


def confirmation(command: Command, keyword_text: str) -> str:
    """The confirmation in the language the keyword was written in (its script)."""
    return _CONFIRMATIONS[(command, _script(keyword_text))]
