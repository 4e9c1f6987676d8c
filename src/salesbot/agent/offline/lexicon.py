"""The offline responder's words and texts, read once from the data files beside this module.

`languages/<code>.yaml` holds, per language, what customers say (`words`: regular expressions per intent,
ordinals, number words, budget and unit phrases) and what the responder answers (`texts`). `categories.yaml`
maps catalog categories to the words customers use for them. Intent patterns of all languages are merged:
customers mix languages, and a Russian speaker may write "ok".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent
LANGUAGES_DIR = DATA_DIR / "languages"
FALLBACK_LANGUAGE = "en"
FLAGS = re.IGNORECASE | re.UNICODE


def words_pattern(fragments: list[str]) -> re.Pattern[str]:
    """Any of `fragments` as a whole word (fragments are regular expressions)."""
    alternatives = "|".join(f"(?:{fragment})" for fragment in sorted(fragments, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", FLAGS)


@dataclass(frozen=True)
class Lexicon:
    intents: dict[str, re.Pattern[str]]
    ordinals: list[tuple[int, re.Pattern[str]]]
    numbers: dict[str, int]
    units: str
    budget_max: str
    budget_about: str
    per_unit: re.Pattern[str]
    in_total: re.Pattern[str]
    joiners: str
    thousand: str
    categories: list[tuple[str, re.Pattern[str]]]
    texts: dict[str, dict[str, str]]

    def text(self, key: str, language: str, overrides: dict[str, str] | None = None, **values: Any) -> str:
        """The text `key` in `language` (the playbook's override first, English when the language has none)."""
        template = (overrides or {}).get(key) or self.texts.get(language, {}).get(key)
        if not template:
            template = self.texts[FALLBACK_LANGUAGE][key]
        return template.format(**values)


def _alternatives(fragments: list[str]) -> str:
    return "|".join(f"(?:{fragment})" for fragment in sorted(fragments, key=len, reverse=True))


@cache
def lexicon() -> Lexicon:
    files = sorted(LANGUAGES_DIR.glob("*.yaml"))
    data = {file.stem: yaml.safe_load(file.read_text(encoding="utf-8")) for file in files}
    merged: dict[str, list[str]] = {}
    ordinals: dict[int, list[str]] = {}
    numbers: dict[str, int] = {}
    lists: dict[str, list[str]] = {
        key: [] for key in ("units", "budget_max", "budget_about", "per_unit", "in_total", "joiners", "thousand")
    }
    for language in data.values():
        words = language.get("words", {})
        for intent, fragments in words.items():
            merged.setdefault(intent, []).extend(fragments)
        for position, fragments in (language.get("ordinals") or {}).items():
            ordinals.setdefault(int(position), []).extend(fragments)
        numbers.update({str(word).casefold(): int(value) for word, value in (language.get("numbers") or {}).items()})
        for key, values in lists.items():
            values.extend(language.get(key) or [])
    categories = yaml.safe_load((DATA_DIR / "categories.yaml").read_text(encoding="utf-8"))
    return Lexicon(
        intents={intent: words_pattern(fragments) for intent, fragments in merged.items()},
        ordinals=[(position, words_pattern(fragments)) for position, fragments in ordinals.items()],
        numbers=numbers,
        units=_alternatives(lists["units"]),
        budget_max=_alternatives(lists["budget_max"]),
        budget_about=_alternatives(lists["budget_about"]),
        per_unit=words_pattern(lists["per_unit"]),
        in_total=words_pattern(lists["in_total"]),
        joiners=_alternatives(lists["joiners"]),
        thousand=_alternatives(lists["thousand"]),
        categories=[(name, words_pattern(fragments)) for name, fragments in categories.items()],
        texts={code: dict(language.get("texts") or {}) for code, language in data.items()},
    )


def text(key: str, language: str, overrides: dict[str, str] | None = None, **values: Any) -> str:
    return lexicon().text(key, language, overrides, **values)
