"""Which language a text is in: one detector for the whole project (customer messages, knowledge chunks).

Detection is `py3langid` (a naive Bayes model over byte n-grams, shipped inside the wheel, 97 languages),
restricted to the languages a business in the region is likely to hear (`DETECTABLE`). Scripts that belong
to one language decide alone (Devanagari -> Hindi, Hebrew, Greek, Thai, ...), and letters that only one
language of a script has settle the usual confusions of short messages: Persian letters (پ چ ژ گ ک ی) are
not Arabic, Ukrainian letters (і ї є ґ) are not Russian. Measured on short chat messages in ten languages:
bench/bench_language.py.

`layout_slip` reads back a short reply typed with the wrong keyboard layout ("нуы" is "yes" typed on a
Russian layout).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

LANGUAGE_NAMES = {
    "en": "English",
    "ar": "Arabic",
    "ru": "Russian",
    "uk": "Ukrainian",
    "fa": "Persian (Farsi)",
    "ur": "Urdu",
    "hi": "Hindi",
    "bn": "Bengali",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "ro": "Romanian",
    "cs": "Czech",
    "sv": "Swedish",
    "da": "Danish",
    "fi": "Finnish",
    "hu": "Hungarian",
    "tr": "Turkish",
    "az": "Azerbaijani",
    "kk": "Kazakh",
    "bg": "Bulgarian",
    "sr": "Serbian",
    "el": "Greek",
    "he": "Hebrew",
    "id": "Indonesian",
    "ms": "Malay",
    "tl": "Filipino (Tagalog)",
    "vi": "Vietnamese",
    "th": "Thai",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
}
DETECTABLE = tuple(LANGUAGE_NAMES)

# Tokens that mix letters and digits (SKUs, "3pcs", "4K") and URLs/e-mails say nothing about the language.
_NOISE = re.compile(r"https?://\S+|\S+@\S+|\b(?=\w*\d)\w+\b")

# Scripts by code point range; the language when a script has one, else the candidates the model decides among.
_SCRIPTS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("arabic", ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))),
    ("cyrillic", ((0x0400, 0x04FF),)),
    ("devanagari", ((0x0900, 0x097F),)),
    ("bengali", ((0x0980, 0x09FF),)),
    ("hebrew", ((0x0590, 0x05FF),)),
    ("greek", ((0x0370, 0x03FF),)),
    ("thai", ((0x0E00, 0x0E7F),)),
    ("hangul", ((0xAC00, 0xD7AF), (0x1100, 0x11FF))),
    ("kana", ((0x3040, 0x30FF),)),
    ("han", ((0x4E00, 0x9FFF),)),
)
_SINGLE_LANGUAGE = {
    "devanagari": "hi",
    "bengali": "bn",
    "hebrew": "he",
    "greek": "el",
    "thai": "th",
    "hangul": "ko",
    "kana": "ja",
}
_CANDIDATES = {
    "arabic": ("ar", "fa", "ur"),
    "cyrillic": ("ru", "uk", "bg", "sr", "kk"),
    "latin": tuple(
        code for code in DETECTABLE if code not in {"ar", "fa", "ur", "ru", "uk", "bg", "sr", "kk", "hi", "bn"}
    ),
}
# Letters only one language of the script uses: decisive even in a two-word message.
_MARKERS = (
    ("fa", re.compile("[پچژگکی]")),
    ("ur", re.compile("[ٹڈڑںےھ]")),
    ("uk", re.compile("[іїєґІЇЄҐ]")),
    ("kk", re.compile("[әғқңөұүһӘҒҚҢӨҰҮҺ]")),
    ("ru", re.compile("[ыэёъЫЭЁЪ]")),
    ("az", re.compile("[əƏ]")),
    ("tr", re.compile("[ıİğĞ]")),
)
# Below this many letters the model is not asked: the script's main language is the answer.
_SHORT_LETTERS = 12
# The model's normalised probability below which a short message is not decided by it: a Latin-script one stays
# undecided, another script's goes to its main language (measured on bench/bench_language.py's messages).
_MIN_CONFIDENCE = {"latin": 0.5, "other": 0.45}


def _script(char: str) -> str | None:
    if not char.isalpha():
        return None
    if char.isascii() or "LATIN" in _char_name(char):
        return "latin"
    code = ord(char)
    for name, ranges in _SCRIPTS:
        if any(low <= code <= high for low, high in ranges):
            return name
    return None


def _char_name(char: str) -> str:
    return unicodedata.name(char, "")


def script_counts(text: str) -> dict[str, int]:
    """Letters per script of the three main languages: Latin (en), Arabic (ar), Cyrillic (ru)."""
    counts = {"en": 0, "ar": 0, "ru": 0}
    for char in text:
        script = _script(char)
        if script == "latin":
            counts["en"] += 1
        elif script == "arabic":
            counts["ar"] += 1
        elif script == "cyrillic":
            counts["ru"] += 1
    return counts


class _Model:
    """py3langid's identifier, loaded once per process (about 1 s) and restricted to `DETECTABLE`."""

    _lock = threading.Lock()
    _identifier: Any = None

    @classmethod
    def get(cls) -> Any:
        with cls._lock:
            if cls._identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                identifier.set_languages([code for code in DETECTABLE if code in identifier.nb_classes])
                cls._identifier = identifier
            return cls._identifier


def load_model() -> None:
    """Load the detector's model now (about 1 s of CPU); the worker calls it at startup, off the event loop."""
    _Model.get()


def _rank(text: str, candidates: tuple[str, ...]) -> tuple[str, float]:
    ranked = _Model.get().rank(text)
    scores = [(str(code), float(score)) for code, score in ranked if code in candidates]
    total = sum(score for _, score in scores) or 1.0
    code, score = scores[0]
    return code, score / total


def detect_language(text: str, *, min_letters: int = 1) -> str | None:
    """The language of `text` (ISO 639-1), or None when it has fewer than `min_letters` letters."""
    cleaned = _NOISE.sub(" ", text or "")
    counts: dict[str, int] = {}
    for char in cleaned:
        script = _script(char)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    script, letters = max(counts.items(), key=lambda item: item[1])
    if letters < min_letters:
        return None
    if script in _SINGLE_LANGUAGE:
        return _SINGLE_LANGUAGE[script]
    if script in ("han",):
        return "ja" if counts.get("kana") else "zh"
    candidates = _CANDIDATES[script]
    for code, marker in _MARKERS:
        if code in candidates and marker.search(cleaned):
            return code
    if letters < _SHORT_LETTERS and script != "latin":
        return candidates[0]
    code, confidence = _rank(cleaned, candidates)
    if confidence < _MIN_CONFIDENCE["latin" if script == "latin" else "other"] and letters < 2 * _SHORT_LETTERS:
        # Too short to tell the script's languages apart: Latin stays undecided, others are the main language.
        return None if script == "latin" else candidates[0]
    return code


# --- keyboard layouts ----------------------------------------------------------------------------------------

_QWERTY = "qwertyuiop[]asdfghjkl;'zxcvbnm,./`"
_LAYOUTS = {
    "ru": "йцукенгшщзхъфывапролджэячсмитьбю.ё",
    "ar": "ضصثقفغعهخحجدشسيبلاتنمكطئءؤر\ufefbىةوزظذ",
}
# Short replies worth recognising when typed with the wrong layout, per language.
_SHORT_REPLIES = {
    "en": frozenset({"yes", "yeah", "yep", "ok", "okay", "sure", "no", "thanks", "thank you", "fine", "great", "deal"}),
    "ru": frozenset({"да", "нет", "ок", "хорошо", "спасибо", "конечно", "давайте", "ага", "угу", "отлично"}),
}


def _retype(text: str, source: str, target: str) -> str:
    """`text` typed on the `source` layout, as the same keys produce on the `target` layout."""
    keys = _QWERTY if source == "en" else _LAYOUTS[source]
    letters = _QWERTY if target == "en" else _LAYOUTS[target]
    table = {ord(key): letter for key, letter in zip(keys, letters, strict=False) if key != letter}
    return text.lower().translate(table)


def layout_slip(text: str, language: str | None) -> str | None:
    """A short reply typed with another keyboard layout, read back in the conversation's `language`.

    "нуы" in an English conversation is "yes"; "lf" in a Russian one is "да". None when the text is not such
    a slip (it already is in the conversation's script, is long, or does not read as a known short reply).
    """
    if language not in _SHORT_REPLIES:
        return None
    words = (text or "").strip().strip("!.?,").strip()
    if not words or len(words) > 20 or len(words.split()) > 2:
        return None
    counts = script_counts(words)
    source = max(counts, key=lambda code: counts[code])
    if source == language or counts[source] == 0 or (source != "en" and source not in _LAYOUTS):
        return None
    if language != "en" and language not in _LAYOUTS:
        return None
    retyped = _retype(words, source, language)
    return retyped if retyped in _SHORT_REPLIES[language] else None
