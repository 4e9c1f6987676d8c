"""Grounding: every price, stock figure, discount or financing rate in a reply must come from where it belongs.

Tools record *evidence*: what a figure is and where it came from (a product's catalog price, a quote's total, a
financing instalment, a product's stock, a fee in a knowledge-base text), with its currency and the products it
belongs to. The playbook contributes its own figures (delivery fees, thresholds) and its plans and discount rules.
`ungrounded(reply, ledger)` then checks every figure the reply states, by kind:

- money (a number next to a currency, ``$249``, ``249.00 USD``, ``1 249 ₽``, ``٢٤٩ درهم``, or after a price word,
  ``price 249``, ``стоит 249``, ``السعر 249``): next to a product (its SKU or name, the nearest in the sentence) it
  must be one of that product's figures (catalog price, a quote or financing that includes it); elsewhere any
  catalog, quote or financing figure. A policy figure (the playbook's or the knowledge base's: "free delivery above
  AED 1,000") grounds only a statement on its own topic (delivery, payment, financing, discounts), never a price.
  A stated currency must be the figure's own.
- stock (``12 in stock``, ``в наличии: 12``, ``متوفر 12``): a stock count the catalog returned.
- discount (a percentage next to a discount word): a discount of a quote of this conversation, at most what the
  customer's current selection qualifies for under the playbook's rules, or a rule stated with its condition.
- rate (a percentage next to a financing word): the rate of the playbook's plan for the term the sentence names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TypedDict

from salesbot.agent.pii import PLACEHOLDER
from salesbot.agent.playbook import Playbook, derived

_NUMBER = r"\d(?:[\d\u00a0\u202f ,.']*\d)?"
_CURRENCY = (
    r"(?:[$€£¥₽₸]|(?i:usd|eur|gbp|rub|aed|sar|kzt|qar|kwd|omr|bhd|inr|dollars?|euros?|dirhams?"
    r"|руб(?:\.|лей|ля|ль)?|долл\w*|евро|дирх\w*)|درهم|دراهم|ريال|دولار|د\.إ|ر\.س)"
)
_PRICE_WORDS = (
    r"(?i:price[sd]?|costs?|priced at|for only|total|subtotal|amount|"
    r"цена|цены|стоит|стоимость|стоимостью|итого|сумма|всего|"
    r"السعر|سعر|بسعر|التكلفة|المجموع|الإجمالي|الاجمالي)"
)
_STOCK_WORDS_AFTER = (
    r"(?i:in stock|available|left|on hand|в наличии|на складе|шт\.? в наличии|متوفر|متوفرة|متاح|متاحة|في المخزون)"
)
_STOCK_WORDS_BEFORE = (
    r"(?i:stock|in stock|available|availability|в наличии|наличие|остаток|на складе|المخزون|متوفر|متوفرة|المتوفر|متاح)"
)
# "up to 10%": the policy's own cap, stated as a cap, not as an offer.
_UP_TO = re.compile(r"(?i:up to|at most|as much as|maximum|max\.?|до|не больше|не более|حتى|لغاية|بحد أقصى)\s*$")
_DISCOUNT_WORDS = re.compile(r"(?i:discount\w*|off\b|rebate|скидк\w*|خصم|تخفيض)")
_RATE_WORDS = re.compile(
    r"(?i:interest|rate|apr|a year|per year|annual\w*|p\.a\.|instal+ments?|financ\w*|годовых|ставк\w*|процент\w*"
    r"|рассрочк\w*|кредит\w*|فائدة|الفائدة|سنويا|سنويًا|تقسيط|بالتقسيط|أقساط|تمويل)"
)
_MONTH_WORDS = r"(?i:months?|monthly|мес\w*|شهر\w*|أشهر|اشهر|شهور)"
_RATE_OR_TERM = re.compile(rf"{_RATE_WORDS.pattern}|{_MONTH_WORDS}")

_MONEY = re.compile(
    rf"(?P<ca>{_CURRENCY})\s?(?P<a>{_NUMBER})|(?P<b>{_NUMBER})\s?(?P<cb>{_CURRENCY})(?!\s?\d)"
    rf"|{_PRICE_WORDS}\s?[:=\-–—]?\s?(?P<c>{_NUMBER})(?:\s?(?P<cc>{_CURRENCY}))?"
)
_STOCK = re.compile(
    rf"(?P<a>{_NUMBER})\s?(?:(?i:units?|pcs|pieces|шт\.?|штук|единиц|قطعة|قطع|وحدة|وحدات)\s?)?{_STOCK_WORDS_AFTER}"
    rf"|{_STOCK_WORDS_BEFORE}\s?[:=\-–—]?\s?(?P<b>{_NUMBER})"
)
_PERCENT = re.compile(r"(?P<p>\d+(?:[.,]\d+)?)\s?%")
_ANY_NUMBER = re.compile(_NUMBER)
_TERM = re.compile(rf"(?<![\d.,])(?P<n>\d{{1,3}})(?![\d%])(?=[^.!?\n%]{{0,20}}?{_MONTH_WORDS})")
# Sentences end at . ! ? ; or a line break followed by a space or the end (not inside "1,249.00").
_SENTENCE_END = re.compile(r"[.!?;؛。](?=\s|$)|\n")

_CURRENCY_CODES: tuple[tuple[str, str], ...] = (
    (r"\$|usd|dollars?|долл\w*|دولار", "USD"),
    (r"€|eur|euros?|евро", "EUR"),
    (r"£|gbp", "GBP"),
    (r"¥", "JPY"),
    (r"₽|rub|руб\S*", "RUB"),
    (r"₸|kzt", "KZT"),
    (r"aed|dirhams?|дирх\w*|درهم|دراهم|د\.إ", "AED"),
    (r"sar|ريال|ر\.س", "SAR"),
    (r"qar", "QAR"),
    (r"kwd", "KWD"),
    (r"omr", "OMR"),
    (r"bhd", "BHD"),
    (r"inr", "INR"),
)

# What a policy figure is about: it grounds a figure only in a sentence on the same topic.
TOPICS: dict[str, re.Pattern[str]] = {
    "delivery": re.compile(r"(?i:deliver\w*|shipping|ship\w*|доставк\w*|достав\w*|توصيل|التوصيل|شحن|الشحن)"),
    "payment": re.compile(
        r"(?i:pay\w*|cash|card|credit|оплат\w*|налич\w*|карт\w*|кредит\w*|دفع|الدفع|نقد\w*|نقدا|بطاقة|ائتمان)"
    ),
    "financing": re.compile(
        r"(?i:instal+ments?|financ\w*|credit|loan|leas\w*|month\w*|рассрочк\w*|кредит\w*|месяц\w*|мес\b"
        r"|تقسيط|بالتقسيط|أقساط|تمويل|شهر\w*|أشهر)"
    ),
    "discount": _DISCOUNT_WORDS,
}

# Evidence kinds: figures of the business's commercial records, and figures of its policy texts.
COMMERCIAL = frozenset({"price", "quote", "financing"})
POLICY = "policy"
STOCK = "stock"
DISCOUNT = "discount"


class Evidence(TypedDict, total=False):
    """One figure a tool returned (persisted in `conversation.facts["evidence"]`)."""

    kind: str  # "price" | "quote" | "financing" | "stock" | "discount" | "policy"
    value: str  # canonical decimal
    currency: str  # ISO code, "" for figures without one
    skus: list[str]  # the products it belongs to
    name: str  # for "price": the product's name (to recognise it in a reply)
    topics: list[str]  # for "policy": what the figure is about


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() and not char.isascii() else char for char in text)


def canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def evidence(
    kind: str,
    value: Decimal | int,
    *,
    currency: str = "",
    skus: Iterable[str] = (),
    name: str = "",
    topics: Iterable[str] = (),
) -> Evidence:
    item: Evidence = {"kind": kind, "value": canonical(Decimal(value)), "currency": currency.upper()}
    if skus:
        item["skus"] = sorted(set(skus))
    if name:
        item["name"] = name
    if topics:
        item["topics"] = sorted(set(topics))
    return item


def interpretations(number: str) -> set[str]:
    """Every value a written number may mean (``1.249`` is 1249 or 1.249; ``3 249`` is 3249 or 249)."""
    raw = _ascii_digits(number).strip().replace("'", "").replace("\u00a0", " ").replace("\u202f", " ")
    candidates: set[str] = set()
    groups = raw.split(" ")
    # A space-separated run can be one grouped number or several numbers ("3 249"): try every suffix.
    for start in range(len(groups)):
        part = "".join(groups[start:])
        if not part:
            continue
        for variant in _separator_readings(part):
            try:
                candidates.add(canonical(Decimal(variant)))
            except InvalidOperation:
                continue
    return candidates


def _separator_readings(part: str) -> set[str]:
    part = part.strip(",.")
    if not part:
        return set()
    has_comma, has_dot = "," in part, "." in part
    if has_comma and has_dot:
        decimal_sep = "," if part.rfind(",") > part.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        return {part.replace(thousands, "").replace(decimal_sep, ".")}
    if has_comma or has_dot:
        sep = "," if has_comma else "."
        as_thousands = part.replace(sep, "")
        pieces = part.split(sep)
        readings = {as_thousands}
        if len(pieces) == 2:
            readings.add(pieces[0] + "." + pieces[1])
        return readings
    return {part}


_THOUSANDS_OF_ZEROS = re.compile(r"\d{1,3}(?:[.,\u00a0\u202f ']000)+")


def amount_readings(number: str) -> set[str]:
    """Readings of an amount: "AED 1,000" or "5.000 руб" is a thousand-grouped amount, never 1 or 5."""
    if _THOUSANDS_OF_ZEROS.fullmatch(_ascii_digits(number).strip()):
        return {canonical(Decimal(re.sub(r"\D", "", _ascii_digits(number))))}
    return interpretations(number)


def currency_code(token: str | None) -> str:
    """The ISO code a written currency stands for ("" when none was written)."""
    if not token:
        return ""
    for pattern, code in _CURRENCY_CODES:
        if re.fullmatch(pattern, token, flags=re.IGNORECASE):
            return code
    return ""


def topics_of(text: str) -> set[str]:
    return {topic for topic, words in TOPICS.items() if words.search(text)}


def _sentences(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _sentence_at(spans: Sequence[tuple[int, int]], position: int) -> tuple[int, int]:
    return next((span for span in spans if span[0] <= position < span[1]), spans[-1])


# A single line break inside a paragraph, not before a list item, heading, quote or table row.
_WRAPPED_LINE = re.compile(r"[ \t]*\n[ \t]*(?=\S)(?![-*•#>|]\s|\d+[.)]\s)")


def policy_evidence(text: str, *, topics: Iterable[str] = ()) -> list[Evidence]:
    """The money figures of a policy text (the playbook's, a knowledge-base chunk), each with the topics of its
    sentence (or `topics`, when the text's topic is known)."""
    cleaned = PLACEHOLDER.sub(" ", _ascii_digits(text))
    # A hard-wrapped line is the same sentence ("same-day delivery for orders\n  confirmed before 12:00 ...
    # (AED 50)"): joined, the figure keeps the topic its sentence names.
    cleaned = _WRAPPED_LINE.sub(" ", cleaned)
    spans = _sentences(cleaned)
    fixed = set(topics)
    found: list[Evidence] = []
    for match in _MONEY.finditer(cleaned):
        start, end = _sentence_at(spans, match.start())
        about = fixed or topics_of(cleaned[start:end])
        if not about:
            continue
        currency = currency_code(match.group("ca") or match.group("cb") or match.group("cc"))
        for value in amount_readings(match.group("a") or match.group("b") or match.group("c")):
            found.append(evidence(POLICY, Decimal(value), currency=currency, topics=about))
    return found


def playbook_evidence(playbook: Playbook) -> list[Evidence]:
    """The playbook's own figures, each on its topic."""
    found: list[Evidence] = []
    for text, topic in (
        (playbook.delivery, "delivery"),
        (playbook.payment, "payment"),
        (playbook.discount.conditions, "discount"),
        (playbook.financing.terms, "financing"),
    ):
        found += policy_evidence(text, topics=[topic])
    for rule in playbook.discount.rules:
        if rule.min_subtotal is not None:
            found.append(evidence(POLICY, rule.min_subtotal, currency=playbook.currency, topics=["discount"]))
    for plan in playbook.financing.plans:
        found.append(evidence(POLICY, plan.min_amount, currency=playbook.currency, topics=["financing"]))
    return found


@dataclass(frozen=True)
class Figure:
    kind: str  # "money" | "stock" | "discount" | "rate"
    text: str
    values: frozenset[str]
    start: int = 0
    currency: str = ""
    up_to: bool = False  # stated as a cap ("up to 10%")


def stated_figures(reply: str) -> list[Figure]:
    """The money, stock, discount and rate figures a reply states."""
    cleaned = PLACEHOLDER.sub(" ", _ascii_digits(reply))
    found: list[Figure] = []
    for match in _MONEY.finditer(cleaned):
        group = "a" if match.group("a") else "b" if match.group("b") else "c"
        number = match.group(group)
        currency = currency_code(match.group("ca") or match.group("cb") or match.group("cc"))
        found.append(Figure("money", number, frozenset(amount_readings(number)), match.start(group), currency))
    for match in _STOCK.finditer(cleaned):
        group = "a" if match.group("a") else "b"
        number = match.group(group)
        found.append(Figure("stock", number, frozenset(interpretations(number)), match.start(group)))
    for match in _PERCENT.finditer(cleaned):
        kind = _percent_kind(cleaned, match.start(), match.end())
        if kind is not None:
            number = match.group("p")
            up_to = bool(_UP_TO.search(cleaned[max(0, match.start() - 20) : match.start()]))
            found.append(Figure(kind, number, frozenset(interpretations(number)), match.start(), up_to=up_to))
    return found


def _percent_kind(text: str, start: int, end: int) -> str | None:
    """A percentage is a discount or a rate by the nearest such word within 30 characters (None: neither)."""
    best: tuple[int, str] | None = None
    low, high = max(0, start - 30), min(len(text), end + 30)
    for kind, words in (("discount", _DISCOUNT_WORDS), ("rate", _RATE_OR_TERM)):
        for match in words.finditer(text, low, high):
            distance = start - match.end() if match.end() <= start else match.start() - end
            if best is None or max(distance, 0) < best[0]:
                best = (max(distance, 0), kind)
    return best[1] if best is not None else None


@dataclass
class Ledger:
    """What a reply may cite: the evidence of this conversation's tool results and the business's rules."""

    items: list[Evidence]
    playbook: Playbook
    # The customer's current selection (SKU -> units), for the discount it qualifies for.
    selection: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[Evidence], playbook: Playbook, *, selection: Mapping[str, int] | None = None) -> Ledger:
        # The playbook's figures are the same on every draft: parsed once per playbook.
        return cls([*items, *derived(playbook, playbook_evidence)], playbook, dict(selection or {}))

    def products(self) -> dict[str, str]:
        """SKU -> name of every product a tool returned."""
        return {
            item["skus"][0]: item.get("name", "") for item in self.items if item["kind"] == "price" and item.get("skus")
        }

    def selection_discount(self) -> Decimal:
        """The discount the current selection qualifies for (subtotal from the catalog prices the tools returned)."""
        if not self.selection:
            return Decimal(0)
        prices: dict[str, tuple[Decimal, str]] = {}
        for item in self.items:
            if item["kind"] == "price" and item.get("skus"):
                prices[item["skus"][0]] = (Decimal(item["value"]), item["currency"])
        units = list(self.selection.values())
        known = [prices[sku] for sku in self.selection if sku in prices]
        currencies = {currency for _price, currency in known}
        if len(known) < len(self.selection) or len(currencies) != 1:
            return self.playbook.discount.allowed_pct(units, None)
        subtotal = sum((prices[sku][0] * qty for sku, qty in self.selection.items()), Decimal(0))
        return self.playbook.allowed_discount(units, subtotal, currencies.pop())


_NAME_WORD = re.compile(r"[\w-]+")


def _mentions(sentence: str, offset: int, products: Mapping[str, str]) -> list[tuple[int, int, set[str]]]:
    """(start, end, SKUs) of every product mention in a sentence: its SKU, or the start of its name (two words at
    least; the longest match at a place wins, so "Dell Latitude 5440" means that model, "Dell Latitude" any)."""
    folded = sentence.casefold()
    found: list[tuple[int, int, set[str]]] = []
    for sku in products:
        for hit in re.finditer(rf"(?<![\w-]){re.escape(sku.casefold())}(?![\w-])", folded):
            found.append((offset + hit.start(), offset + hit.end(), {sku}))
    longest: dict[int, tuple[int, int, set[str]]] = {}  # start -> (words, end, SKUs)
    for sku, name in products.items():
        words = _NAME_WORD.findall(name.casefold())
        for size in range(len(words), 1, -1):
            pattern = r"(?<![\w-])" + r"[\s,()]+".join(re.escape(word) for word in words[:size]) + r"(?![\w-])"
            match = re.search(pattern, folded)
            if match is None:
                continue
            held = longest.get(match.start())
            if held is None or held[0] < size:
                longest[match.start()] = (size, match.end(), {sku})
            elif held[0] == size:
                held[2].add(sku)
            break
    found += [(offset + start, offset + end, skus) for start, (_size, end, skus) in longest.items()]
    return found


def ungrounded(reply: str, ledger: Ledger) -> list[Figure]:
    """Figures in the reply that nothing in the ledger supports (see the module docstring for the rules)."""
    cleaned = PLACEHOLDER.sub(" ", _ascii_digits(reply))
    spans = _sentences(cleaned)
    products = ledger.products()
    problems: list[Figure] = []
    selection_cap: Decimal | None = None
    for figure in stated_figures(reply):
        start, end = _sentence_at(spans, figure.start)
        sentence = cleaned[start:end]
        if figure.kind == "money":
            grounded = _money_grounded(figure, sentence, start, ledger, products)
        elif figure.kind == "stock":
            grounded = _stock_grounded(figure, sentence, start, ledger, products)
        elif figure.kind == "discount":
            if selection_cap is None:
                selection_cap = ledger.selection_discount()
            grounded = _discount_grounded(figure, sentence, ledger, selection_cap)
        else:
            grounded = _rate_grounded(figure, sentence, start, ledger.playbook)
        if not grounded:
            problems.append(figure)
    return problems


def _nearest_product(
    figure: Figure, sentence: str, offset: int, products: Mapping[str, str]
) -> tuple[set[str], str] | None:
    """The SKUs of the product mention nearest to the figure, and the text between the two."""
    best: tuple[int, set[str], str] | None = None
    for start, end, skus in _mentions(sentence, offset, products):
        if end <= figure.start:
            distance, between = figure.start - end, sentence[end - offset : figure.start - offset]
        else:
            distance, between = start - figure.start, sentence[figure.start - offset : start - offset]
        if best is None or distance < best[0]:
            best = (distance, skus, between)
    return None if best is None else (best[1], best[2])


def _matches(item: Evidence, figure: Figure) -> bool:
    if item["value"] not in figure.values:
        return False
    return not figure.currency or not item["currency"] or item["currency"] == figure.currency


def _money_grounded(figure: Figure, sentence: str, offset: int, ledger: Ledger, products: Mapping[str, str]) -> bool:
    nearest = _nearest_product(figure, sentence, offset, products)
    topics = topics_of(sentence if nearest is None else nearest[1])
    for item in ledger.items:
        if not _matches(item, figure):
            continue
        if item["kind"] in COMMERCIAL:
            # Next to a product, only that product's own figures (a policy topic in between frees the figure).
            if nearest is None or topics or set(item.get("skus", [])) & nearest[0]:
                return True
        elif item["kind"] == POLICY and set(item.get("topics", [])) & topics:
            return True
    return False


def _stock_grounded(figure: Figure, sentence: str, offset: int, ledger: Ledger, products: Mapping[str, str]) -> bool:
    nearest = _nearest_product(figure, sentence, offset, products)
    return any(
        item["kind"] == STOCK
        and item["value"] in figure.values
        and (nearest is None or bool(set(item.get("skus", [])) & nearest[0]))
        for item in ledger.items
    )


def _decimals(values: Iterable[str]) -> list[Decimal]:
    found = []
    for value in values:
        try:
            found.append(Decimal(value))
        except InvalidOperation:
            continue
    return found


def _discount_grounded(figure: Figure, sentence: str, ledger: Ledger, selection_cap: Decimal) -> bool:
    if any(item["kind"] == DISCOUNT and item["value"] in figure.values for item in ledger.items):
        return True  # a quote of this conversation carries it
    stated = _decimals(figure.values)
    if any(value <= selection_cap for value in stated):
        return True
    if figure.up_to and any(value <= ledger.playbook.discount.max_pct for value in stated):
        return True
    # A rule stated with its own condition ("up to 10% for 10 or more units").
    conditions_text = _PERCENT.sub(" ", sentence)  # the percentages themselves are not conditions
    numbers = set().union(*(amount_readings(m.group(0)) for m in _ANY_NUMBER.finditer(conditions_text)))
    for rule in ledger.playbook.discount.rules:
        conditions = {canonical(Decimal(v)) for v in (rule.min_units, rule.min_subtotal) if v is not None}
        if conditions and conditions <= numbers and any(value <= rule.max_pct for value in stated):
            return True
    return False


def _rate_grounded(figure: Figure, sentence: str, offset: int, playbook: Playbook) -> bool:
    """A rate must be the plan's rate for the term named nearest to it (or, with no term named, some plan's)."""
    stated = set(_decimals(figure.values))
    # The clause first ("0% over 3 or 6 months, 9% over 12 months"), then the whole sentence.
    at = figure.start - offset
    clause_start = max(sentence.rfind(", ", 0, at), sentence.rfind("، ", 0, at)) + 1
    ends = [end for end in (sentence.find(", ", at), sentence.find("، ", at)) if end != -1]
    clause = sentence[clause_start : min(ends, default=len(sentence))]
    terms = [(abs(clause_start + m.start() - at), int(m.group("n"))) for m in _TERM.finditer(clause)] or [
        (abs(m.start() - at), int(m.group("n"))) for m in _TERM.finditer(sentence)
    ]
    if terms:
        plan = playbook.financing.plan(min(terms)[1])
        return plan is not None and plan.annual_rate in stated
    return any(plan.annual_rate in stated for plan in playbook.financing.plans)


def catalog_evidence(sku: str, name: str, price: Decimal, currency: str, stock: int) -> list[Evidence]:
    """A product a tool returned: its price and its stock."""
    return [
        evidence("price", price, currency=currency, skus=[sku], name=name),
        evidence(STOCK, stock, skus=[sku]),
    ]


# Compatibility for callers that still collect bare numbers (agent/service.py's baseline; no check reads them).
MONEY_TAG = "money:"


def figures(text: str) -> set[str]:
    """All numbers in a text, in every reading (legacy: the check uses evidence, not these)."""
    cleaned = PLACEHOLDER.sub(" ", _ascii_digits(text))
    found: set[str] = set()
    for match in _ANY_NUMBER.finditer(cleaned):
        found |= interpretations(match.group(0))
    return found


def as_money(values: Iterable[str]) -> set[str]:
    """Legacy companion of `figures` (see there)."""
    plain = set(values)
    return plain | {MONEY_TAG + value for value in plain if not value.startswith(MONEY_TAG)}
