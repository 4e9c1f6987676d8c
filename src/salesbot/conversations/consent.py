"""Opt-out and opt-in by keyword: deterministic code, never the agent's judgement.

A message that is exactly one of `OPT_OUT_KEYWORDS` (case-insensitive, surrounding whitespace and punctuation
ignored) opts the customer out: one confirmation, then no automated message at all. `OPT_IN_KEYWORDS` opts
back in. Keywords inside a longer message are ordinary text.
"""

from __future__ import annotations

import enum
import unicodedata

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
