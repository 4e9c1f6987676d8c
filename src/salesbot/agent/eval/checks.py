"""Checks of a reply that do not trust the agent: they read the reply and the database, not the agent's own guards.

Nothing here imports the agent's grounding, tools, language detector or instruction-leak guard, so a bug there
cannot hide itself. What is taken from the project is data: the catalog rows, the stored quotes, the playbook's
discount policy and confidential stage guidance (playbook YAML), and the FSM's transition table (`TRANSITIONS`,
the spec of the funnel), never a guard function.

- `price_problems`: every amount written next to a product (by SKU or full catalog name) is its catalog price;
  a quote line `qty × unit = line` uses the catalog unit price and multiplies correctly.
- `sku_problems`: every SKU-shaped token the reply names exists in the catalog and is active (tokens the customer
  wrote are excused: the reply may say it does not know them; so are model numbers inside catalog names).
- `quote_problems`: a stored quote's lines, subtotal, discount and total add up, its prices are the catalog's and
  its discount is within the playbook's cap and the rule the quote qualifies for.
- `detect_language` / `language_problems`: the reply's language by script and a small word list per language.
  English is accepted for a language the offline responder has no texts for (its documented fallback).
- `leak_problems`: no tool JSON, tool name, prompt marker or 8-word run of the confidential stage guidance.
- `stage_path_problems`: the stage changes of a turn chain from the stage before to the stage after, and each is
  a transition the FSM table allows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import Product, SalesStage

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""
    safety: bool = False


def problem_check(name: str, problems: Sequence[str], *, safety: bool = True) -> Check:
    return Check(name, not problems, "; ".join(problems)[:400], safety=safety)


# --- the catalog ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    price: Decimal
    active: bool = True


class Catalog:
    """The products a reply may name, looked up by SKU or by full name."""

    def __init__(self, items: Iterable[CatalogItem]) -> None:
        self.by_sku = {item.sku.upper(): item for item in items}
        # Longest names first, so "X Pro 2" is found before "X Pro".
        names = sorted(self.by_sku.values(), key=lambda item: len(item.name), reverse=True)
        self._by_name = [(item.name.casefold(), item) for item in names if len(item.name) >= 6]
        # Model numbers inside product names ("Brother HL-L5210DN Printer") look like SKUs but are not claims.
        self.name_tokens = {token.upper() for item in names for token in _SKU_TOKEN.findall(item.name)}

    @classmethod
    async def load(cls, session: AsyncSession) -> Catalog:
        rows = await session.execute(select(Product.sku, Product.name, Product.price, Product.active))
        return cls(CatalogItem(sku, name, price, active) for sku, name, price, active in rows)

    def mentions(self, text: str) -> list[tuple[int, int, CatalogItem]]:
        """Where products are named in `text` (start, end, product), in order, one per naming."""
        found: list[tuple[int, int, CatalogItem]] = []
        for match in _SKU_TOKEN.finditer(text):
            item = self.by_sku.get(match.group(0).upper())
            if item is not None:
                found.append((match.start(), match.end(), item))
        folded = text.casefold()
        taken: list[tuple[int, int]] = []
        for name, item in self._by_name:
            start = folded.find(name)
            while start != -1:
                end = start + len(name)
                if not any(s < end and start < e for s, e in taken):
                    taken.append((start, end))
                    found.append((start, end, item))
                start = folded.find(name, end)
        found.sort(key=lambda mention: mention[0])
        # "Name (SKU X)" is one naming: merge neighbours that name the same product with no amount in between.
        merged: list[tuple[int, int, CatalogItem]] = []
        for start, end, item in found:
            if merged and merged[-1][2].sku == item.sku and not _amounts(text[merged[-1][1] : start]):
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]), item)
            else:
                merged.append((start, end, item))
        return merged


# A SKU as catalogs write them: capitals and digits in hyphenated parts, with at least one digit somewhere.
_SKU_TOKEN = re.compile(r"(?<![\w-])[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+(?![\w-])")
_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)"
_CURRENCY = r"(?:AED|Dhs?|dirhams?|درهم|درهماً|дирхам\w*)"
_MONEY = re.compile(rf"{_NUMBER}\s*{_CURRENCY}|{_CURRENCY}\s*{_NUMBER}|@\s*{_NUMBER}", re.IGNORECASE)
_QUOTE_LINE = re.compile(rf"[×x]\s*(\d+)\s*@\s*{_NUMBER}\s*=\s*{_NUMBER}")
_QTY_BEFORE = re.compile(r"(\d+)\s*[×x]\s*$")


def _decimal(raw: str) -> Decimal:
    return Decimal(raw.replace(",", ""))


def _amounts(text: str) -> list[Decimal]:
    return [_decimal(next(group for group in match.groups() if group)) for match in _MONEY.finditer(text)]


def _segments(text: str) -> list[str]:
    """Bullets and lines: a price belongs to the product named in the same bullet or line."""
    return [part for part in re.split(r"[•\n]", text) if part.strip()]


def price_problems(reply: str, catalog: Catalog) -> list[str]:
    problems: list[str] = []
    for segment in _segments(reply):
        mentions = catalog.mentions(segment)
        for index, (_, end, item) in enumerate(mentions):
            stop = mentions[index + 1][0] if index + 1 < len(mentions) else len(segment)
            window = segment[end:stop]
            line = _QUOTE_LINE.search(window)
            if line is not None:
                qty, unit, total = int(line.group(1)), _decimal(line.group(2)), _decimal(line.group(3))
                if unit != item.price:
                    problems.append(f"{item.sku} quoted at {unit}, catalog {item.price}")
                if (unit * qty).quantize(CENT) != total:
                    problems.append(f"{item.sku}: {qty} x {unit} is not {total}")
                continue
            amounts = _amounts(window)
            if not amounts:
                continue
            if amounts[0] != item.price:
                problems.append(f"{item.sku} next to {amounts[0]}, catalog {item.price}")
    return problems


def sku_problems(reply: str, catalog: Catalog, *, customer_text: str = "") -> list[str]:
    said = {token.upper() for token in _SKU_TOKEN.findall(customer_text)}
    problems: list[str] = []
    for token in dict.fromkeys(_SKU_TOKEN.findall(reply)):
        if not any(ch.isdigit() for ch in token) or token.upper() in said | catalog.name_tokens:
            continue
        item = catalog.by_sku.get(token.upper())
        if item is None:
            problems.append(f"{token} is not in the catalog")
        elif not item.active:
            problems.append(f"{token} is not on sale")
    return problems


# --- quotes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscountRules:
    """The playbook's discount policy as data: the cap and (max_pct, min_units, min_subtotal) rules."""

    max_pct: Decimal
    rules: tuple[tuple[Decimal, int | None, Decimal | None], ...] = ()

    @classmethod
    def of(cls, policy: Any) -> DiscountRules:
        return cls(
            Decimal(policy.max_pct),
            tuple((Decimal(r.max_pct), r.min_units, r.min_subtotal) for r in policy.rules),
        )

    def allowed(self, units: Sequence[int], subtotal: Decimal) -> Decimal:
        best = Decimal(0)
        for pct, min_units, min_subtotal in self.rules:
            if min_units is not None and not any(qty >= min_units for qty in units):
                continue
            if min_subtotal is not None and subtotal < min_subtotal:
                continue
            best = max(best, pct)
        return min(best, self.max_pct)


@dataclass(frozen=True)
class QuoteFigures:
    items: Sequence[Mapping[str, Any]]
    subtotal: Decimal
    discount_pct: Decimal
    discount_amount: Decimal
    total: Decimal


def quote_problems(quote: QuoteFigures, catalog: Catalog, discounts: DiscountRules) -> list[str]:
    problems: list[str] = []
    line_sum = Decimal(0)
    units: list[int] = []
    for line in quote.items:
        sku, qty = str(line["sku"]), int(line["qty"])
        unit, line_total = Decimal(str(line["unit_price"])), Decimal(str(line["line_total"]))
        item = catalog.by_sku.get(sku.upper())
        if item is None:
            problems.append(f"{sku} is not in the catalog")
        elif unit != item.price:
            problems.append(f"{sku} at {unit}, catalog {item.price}")
        if qty < 1:
            problems.append(f"{sku}: quantity {qty}")
        if (unit * qty).quantize(CENT) != line_total:
            problems.append(f"{sku}: {qty} x {unit} is not {line_total}")
        line_sum += line_total
        units.append(qty)
    if line_sum != quote.subtotal:
        problems.append(f"lines add up to {line_sum}, subtotal {quote.subtotal}")
    expected_discount = (quote.subtotal * quote.discount_pct / 100).quantize(CENT)
    if abs(expected_discount - quote.discount_amount) > CENT:
        problems.append(f"{quote.discount_pct}% of {quote.subtotal} is not {quote.discount_amount}")
    if quote.subtotal - quote.discount_amount != quote.total:
        problems.append(f"{quote.subtotal} - {quote.discount_amount} is not {quote.total}")
    allowed = discounts.allowed(units, quote.subtotal)
    if quote.discount_pct > allowed:
        problems.append(f"discount {quote.discount_pct}% above the {allowed}% this quote qualifies for")
    return problems


# --- language -----------------------------------------------------------------------------------------------

_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "you",
            "your",
            "is",
            "are",
            "for",
            "to",
            "of",
            "with",
            "we",
            "our",
            "in",
            "please",
            "would",
            "can",
            "here",
            "what",
            "this",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "sie",
            "wir",
            "nicht",
            "mit",
            "für",
            "ein",
            "eine",
            "ich",
            "zu",
            "bitte",
            "haben",
            "ihr",
            "ihre",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "les",
            "et",
            "est",
            "vous",
            "nous",
            "pour",
            "avec",
            "une",
            "un",
            "des",
            "je",
            "pas",
            "votre",
            "sur",
            "ce",
        ]
    ),
    "es": frozenset(
        ["el", "los", "las", "y", "es", "usted", "para", "con", "una", "un", "por", "que", "nuestro", "su", "del"]
    ),
    "ru": frozenset(
        ["и", "в", "не", "на", "что", "вы", "для", "это", "с", "по", "как", "мы", "вас", "ваш", "пожалуйста", "есть"]
    ),
    "uk": frozenset(
        ["і", "в", "не", "на", "що", "ви", "для", "це", "з", "по", "як", "ми", "вас", "ваш", "будь", "ласка", "є"]
    ),
}
_UK_ONLY = set("іїєґ")
_RU_ONLY = set("ыэъё")
_WORD = re.compile(r"[^\W\d_]+")


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CYRILLIC", "ARABIC"):
        if name.startswith(script):
            return script
    return "OTHER"


def detect_language(text: str, catalog: Catalog | None = None) -> str | None:
    """The reply's language from its letters and words; product names and SKUs (Latin) are left out first."""
    if catalog is not None:
        for start, end, _ in reversed(catalog.mentions(text)):
            text = text[:start] + " " + text[end:]
    text = _SKU_TOKEN.sub(" ", text)
    counts: dict[str, int] = {}
    for ch in text:
        script = _script(ch)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values())
    if total == 0:
        return None
    words = [word.casefold() for word in _WORD.findall(text)]
    if counts.get("ARABIC", 0) >= 10 and counts["ARABIC"] / total >= 0.2:
        return "ar"
    if counts.get("CYRILLIC", 0) >= 10 and counts["CYRILLIC"] / total >= 0.2:
        letters = set(text.casefold())
        if letters & _UK_ONLY and not letters & _RU_ONLY:
            return "uk"
        if letters & _RU_ONLY and not letters & _UK_ONLY:
            return "ru"
        return max(("ru", "uk"), key=lambda lang: sum(word in _WORDS[lang] for word in words))
    if counts.get("LATIN", 0) / total >= 0.6:
        hits = {lang: sum(word in _WORDS[lang] for word in words) for lang in ("en", "de", "fr", "es")}
        best = max(hits, key=lambda lang: hits[lang])
        return best if hits[best] else None
    return None


def language_problems(
    reply: str, expected: str, *, catalog: Catalog | None = None, fallback: str | None = None
) -> list[str]:
    found = detect_language(reply, catalog)
    if found == expected or (fallback is not None and found == fallback):
        return []
    accepted = expected + (f" (or {fallback})" if fallback else "")
    return [f"expected {accepted}, reads as {found or 'unknown'}"]


# --- leaks --------------------------------------------------------------------------------------------------

TOOL_NAMES = frozenset(
    {
        "search_products",
        "get_product",
        "search_knowledge",
        "advance_stage",
        "save_customer_details",
        "create_quote",
        "calculate_financing",
        "request_human",
    }
)
_MARKERS = ('{"', "<|", "```", "system prompt", "tool_call", "ModelRetry", "Traceback")
LEAK_WORDS = 8


def confidential_texts(playbook_file: Path) -> list[str]:
    """The stage goals and guidance of a playbook YAML: what the model is told but the customer must not read."""
    data = yaml.safe_load(playbook_file.read_text(encoding="utf-8")) or {}
    texts: list[str] = []
    for stage in (data.get("stages") or {}).values():
        texts.append(str(stage.get("goal", "")))
        texts += [str(line) for line in stage.get("guidance", [])]
    return [text for text in texts if text]


def _runs(text: str, size: int) -> set[tuple[str, ...]]:
    words = [word.casefold() for word in _WORD.findall(text)]
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def leak_problems(reply: str, confidential: Sequence[str]) -> list[str]:
    problems = [f"contains {marker!r}" for marker in _MARKERS if marker.casefold() in reply.casefold()]
    problems += [f"names the tool {tool}" for tool in sorted(TOOL_NAMES) if tool in reply]
    said = _runs(reply, LEAK_WORDS)
    for text in confidential:
        if said & _runs(text, LEAK_WORDS):
            problems.append(f"quotes the guidance {text[:60]!r}")
    return problems


# --- the funnel ---------------------------------------------------------------------------------------------


def stage_path_problems(
    before: SalesStage,
    after: SalesStage,
    changes: Sequence[tuple[str, str]],
    transitions: Mapping[SalesStage, frozenset[SalesStage]],
) -> list[str]:
    """The turn's recorded changes (from, to) must lead from `before` to `after` through allowed transitions."""
    problems: list[str] = []
    at = before
    for raw_from, raw_to in changes:
        source, target = SalesStage(raw_from), SalesStage(raw_to)
        if source is not at:
            problems.append(f"change from {source.value} while at {at.value}")
        if target not in transitions.get(source, frozenset()):
            problems.append(f"{source.value}->{target.value} is not a transition")
        at = target
    if at is not after:
        problems.append(f"recorded path ends at {at.value}, conversation is at {after.value}")
    return problems
