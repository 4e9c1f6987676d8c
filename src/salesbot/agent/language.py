"""Which language the customer writes in: detected per message by script, kept per conversation.

Arabic and Cyrillic script map to Arabic and Russian; Latin script maps to English (the product serves EN/AR/RU).
A message needs a few letters to count, so "ok", "👍" or a bare SKU ("X100") keeps the conversation's language,
while a real sentence in another script switches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from salesbot.agent.pii import PLACEHOLDER

SUPPORTED_LANGUAGES = ("en", "ar", "ru")
LANGUAGE_NAMES = {"en": "English", "ar": "Arabic", "ru": "Russian"}
# Fewer letters than this in a message do not change the conversation's language.
MIN_LETTERS_TO_SWITCH = 4

# Tokens that mix letters and digits (SKUs, "3pcs", "4K") and URLs/e-mails say nothing about the language.
_NOISE = re.compile(r"https?://\S+|\S+@\S+|\b(?=\w*\d)\w+\b")


def script_counts(text: str) -> dict[str, int]:
    """Letters per script: Latin (en), Arabic (ar), Cyrillic (ru)."""
    counts = {"en": 0, "ar": 0, "ru": 0}
    for char in text:
        code = ord(char)
        if 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F or 0xFB50 <= code <= 0xFDFF or 0xFE70 <= code <= 0xFEFF:
            if char.isalpha():
                counts["ar"] += 1
        elif 0x0400 <= code <= 0x04FF:
            if char.isalpha():
                counts["ru"] += 1
        elif char.isascii() and char.isalpha():
            counts["en"] += 1
    return counts


def detect_language(text: str, *, min_letters: int = MIN_LETTERS_TO_SWITCH) -> str | None:
    """The language of one message, or None when it has too few letters to tell."""
    cleaned = _NOISE.sub(" ", PLACEHOLDER.sub(" ", text or ""))
    counts = script_counts(cleaned)
    language, letters = max(counts.items(), key=lambda item: item[1])
    if letters < min_letters:
        return None
    return language


def conversation_language(messages: Iterable[str], *, current: str | None, default: str = "en") -> str:
    """The language to answer in: the latest message that tells wins, else the conversation's, else the default."""
    detected = current if current in SUPPORTED_LANGUAGES else None
    for text in messages:
        language = detect_language(text)
        if language is not None:
            detected = language
    return detected or default
