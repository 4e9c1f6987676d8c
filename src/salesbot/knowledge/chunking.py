"""Split Markdown or plain-text documents into retrieval chunks.

Markdown is cut at headings first: every chunk belongs to one section and carries the section's heading path
as its title ("Delivery › Delivery charges"), so a chunk read alone still says what it is about. A long
section is packed paragraph by paragraph into chunks of at most `max_chars`; consecutive chunks of the same
section overlap by the previous chunk's last paragraph (or its last sentences, up to `overlap_chars`), so a
fact that straddles the cut is found from either side. Paragraphs longer than a chunk are split at sentence
boundaries, and a sentence longer than a chunk at word boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from salesbot.knowledge.text import detect_language

MAX_CHARS = 1200
OVERLAP_CHARS = 200
TITLE_SEPARATOR = " › "
TITLE_LIMIT = 300

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?؟。])\s+")


@dataclass(frozen=True)
class Chunk:
    index: int
    title: str
    content: str
    language: str


@dataclass
class _Section:
    path: list[str]
    lines: list[str]


def _sections(text: str, default_title: str) -> list[_Section]:
    sections: list[_Section] = [_Section([default_title], [])]
    path: list[tuple[int, str]] = []
    in_fence = False
    for line in text.splitlines():
        if line.strip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            sections[-1].lines.append(line)
            continue
        level, title = len(match.group(1)), match.group(2).strip()
        path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, title)]
        sections.append(_Section([name for _, name in path], []))
    return sections


def _paragraphs(lines: list[str]) -> list[str]:
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append("\n".join(current).strip())
            current = []
    if current:
        paragraphs.append("\n".join(current).strip())
    return paragraphs


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    """Pieces of at most `max_chars`: whole sentences where possible, else words."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        words = [sentence] if len(sentence) <= max_chars else sentence.split()
        for part in words:
            candidate = f"{current} {part}".strip() if current else part
            if len(candidate) <= max_chars:
                current = candidate
                continue
            if current:
                pieces.append(current)
            current = part[:max_chars]
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, limit: int) -> str:
    """The last sentences of `text` that fit in `limit` characters (for the overlap)."""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    for sentence in reversed(_SENTENCE_END.split(text)):
        if size + len(sentence) + 1 > limit:
            break
        kept.insert(0, sentence)
        size += len(sentence) + 1
    return " ".join(kept) if kept else text[-limit:].split(" ", 1)[-1]


def _pack(paragraphs: list[str], max_chars: int, overlap_chars: int) -> list[str]:
    pieces = [piece for paragraph in paragraphs for piece in _split_long(paragraph, max_chars)]
    chunks: list[str] = []
    current: list[str] = []
    fresh = False  # whether `current` holds anything beyond the overlap carried over
    for piece in pieces:
        size = sum(len(part) + 2 for part in current) + len(piece)
        if current and size > max_chars and fresh:
            chunks.append("\n\n".join(current))
            overlap = _tail(current[-1], overlap_chars)
            current = [overlap] if len(overlap) + len(piece) + 2 <= max_chars else []
            fresh = False
        current.append(piece)
        fresh = True
    if current and fresh:
        chunks.append("\n\n".join(current))
    return chunks


def _title(path: list[str]) -> str:
    title = TITLE_SEPARATOR.join(path)
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def chunk_markdown(
    text: str, *, default_title: str, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS
) -> list[Chunk]:
    """Chunks of a Markdown document, in document order, numbered from 0."""
    chunks: list[Chunk] = []
    for section in _sections(text, default_title):
        for content in _pack(_paragraphs(section.lines), max_chars, overlap_chars):
            chunks.append(Chunk(len(chunks), _title(section.path), content, detect_language(content)))
    return chunks


def chunk_plain_text(
    text: str, *, title: str, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS
) -> list[Chunk]:
    """Chunks of a plain-text document: paragraphs packed under one title."""
    return [
        Chunk(index, _title([title]), content, detect_language(content))
        for index, content in enumerate(_pack(_paragraphs(text.splitlines()), max_chars, overlap_chars))
    ]


def chunk_file(path: Path, text: str) -> list[Chunk]:
    title = path.stem.replace("_", " ").replace("-", " ").strip().capitalize() or path.name
    if path.suffix.lower() in {".md", ".markdown"}:
        return chunk_markdown(text, default_title=title)
    return chunk_plain_text(text, title=title)
