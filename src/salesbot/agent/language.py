"""Which language the customer writes in: detected per message (`salesbot.kit.language`), kept per conversation.

A message needs a few letters to count, so "ok", "👍" or a bare SKU ("X100") keeps the conversation's language,
while a real sentence in another language switches it. A short reply typed with the wrong keyboard layout
("нуы" is "yes" typed on a Russian layout) keeps it too. The playbook's fixed messages exist in
`SUPPORTED_LANGUAGES`; the LLM is told any detected language by name (`LANGUAGE_NAMES`).
"""

from __future__ import annotations

from collections.abc import Iterable

from salesbot.agent.pii import PLACEHOLDER
from salesbot.kit import language as detector
from salesbot.kit.language import LANGUAGE_NAMES as LANGUAGE_NAMES
from salesbot.kit.language import layout_slip as layout_slip
from salesbot.kit.language import script_counts as script_counts

# Languages the playbook's fixed messages are written in (and the default language may be set to).
SUPPORTED_LANGUAGES = ("en", "ar", "ru")
# Fewer letters than this in a message do not change the conversation's language.
MIN_LETTERS_TO_SWITCH = 4


def detect_language(text: str, *, min_letters: int = MIN_LETTERS_TO_SWITCH) -> str | None:
    """The language of one message, or None when it has too few letters to tell (placeholders do not count)."""
    return detector.detect_language(PLACEHOLDER.sub(" ", text or ""), min_letters=min_letters)


def conversation_language(messages: Iterable[str], *, current: str | None, default: str = "en") -> str:
    """The language to answer in: the latest message that tells wins, else the conversation's, else the default."""
    detected = current if current in LANGUAGE_NAMES else None
    for text in messages:
        if layout_slip(text, detected) is not None:
            continue
        language = detect_language(text)
        if language is not None:
            detected = language
    return detected or default
