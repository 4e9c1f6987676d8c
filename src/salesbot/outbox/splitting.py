"""Split a long reply into parts under a provider's length limit, on the most natural boundary available.

Paragraphs are packed together while they fit; a paragraph that does not fit is split between sentences, a
sentence between words, and only a single over-long word is cut. Parts carry no "1/3" prefixes.
"""

from __future__ import annotations

import re

from salesbot.models import Channel
from salesbot.settings import Settings

CONSOLE_MAX_TEXT_LENGTH = 4000

_PARAGRAPHS = re.compile(r"\n\s*\n")
# Finer boundaries tried in order inside a paragraph that is too long, with the separator that re-joins them:
# lines, sentences (after Latin, CJK or Arabic final punctuation or an ellipsis), words.
_LEVELS = (
    (re.compile(r"\n"), "\n"),
    (re.compile(r"(?<=[.!?…。！？؟])\s+"), " "),
    (re.compile(r"\s+"), " "),
)


def part_limit(settings: Settings, channel: Channel) -> int:
    """The longest part the outbox sends on `channel` (the same settings the provider adapters read)."""
    if channel is Channel.WAZZUP:
        return settings.wazzup.max_text_length
    if channel is Channel.TWILIO:
        return settings.twilio.max_text_length
    if channel is Channel.META:
        return settings.meta.max_text_length
    return CONSOLE_MAX_TEXT_LENGTH


def _pack(pieces: list[str], limit: int, joiner: str) -> list[str]:
    parts: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{joiner}{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        current = piece
    if current:
        parts.append(current)
    return parts


def _fit(piece: str, limit: int, level: int = 0) -> list[str]:
    """Break one piece that may exceed `limit` on the coarsest boundary that helps; cut characters last."""
    if len(piece) <= limit:
        return [piece]
    if level >= len(_LEVELS):
        return [piece[i : i + limit] for i in range(0, len(piece), limit)]
    pattern, joiner = _LEVELS[level]
    pieces = [p.strip() for p in pattern.split(piece) if p.strip()]
    if len(pieces) <= 1:
        return _fit(piece, limit, level + 1)
    return _pack([part for p in pieces for part in _fit(p, limit, level + 1)], limit, joiner)


def split_text(text: str, limit: int) -> list[str]:
    """Parts of `text`, each at most `limit` characters, in order; no empty parts."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if not text:
        return []
    if len(text) <= limit:
        return [text]
    paragraphs = [p.strip() for p in _PARAGRAPHS.split(text) if p.strip()]
    fitted = [part for paragraph in paragraphs for part in _fit(paragraph, limit)]
    return _pack(fitted, limit, "\n\n")
