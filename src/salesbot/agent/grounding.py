"""Grounding: every price, stock figure or discount in a reply must come from this conversation's tool results.

`figures(text)` collects all numbers of a tool result (normalised, so ``1,249.00`` and ``1249`` meet).
`ungrounded(reply, allowed)` finds the money, stock and discount figures a reply states that are not among
them. Money means a number next to a currency (``$249``, ``249.00 USD``, ``1 249 ₽``, ``٢٤٩ درهم``) or after a
price word (``price 249``, ``стоит 249``, ``السعر 249``); stock means a number next to a stock word
(``12 in stock``, ``в наличии: 12``, ``متوفر 12``); a discount is a percentage next to a discount word and is
also accepted when it is within the playbook's cap.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from salesbot.agent.pii import PLACEHOLDER

_NUMBER = r"\d(?:[\d\u00a0\u202f ,.']*\d)?"
_CURRENCY = (
    r"(?:[$€£¥₽₸]|(?i:usd|eur|gbp|rub|aed|sar|kzt|dollars?|euros?|dirhams?|руб(?:\.|лей|ля|ль)?|долл\w*|евро|дирх\w*)"
    r"|درهم|دراهم|ريال|دولار|د\.إ|ر\.س)"
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
_DISCOUNT_WORDS = r"(?i:discount|off\b|rebate|скидк\w*|خصم|تخفيض)"

_MONEY = re.compile(
    rf"{_CURRENCY}\s?(?P<a>{_NUMBER})|(?P<b>{_NUMBER})\s?{_CURRENCY}|{_PRICE_WORDS}\s?[:=\-–—]?\s?(?P<c>{_NUMBER})"
)
_STOCK = re.compile(
    rf"(?P<a>{_NUMBER})\s?(?:(?i:units?|pcs|pieces|шт\.?|штук|единиц|قطعة|قطع|وحدة|وحدات)\s?)?{_STOCK_WORDS_AFTER}"
    rf"|{_STOCK_WORDS_BEFORE}\s?[:=\-–—]?\s?(?P<b>{_NUMBER})"
)
_PERCENT = re.compile(r"(?P<p>\d+(?:[.,]\d+)?)\s?%")
_ANY_NUMBER = re.compile(_NUMBER)


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() and not char.isascii() else char for char in text)


def _canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


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
                candidates.add(_canonical(Decimal(variant)))
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


# A money figure is grounded only by a number that was money where it came from (next to a currency or a price
# word): otherwise "1-year warranty" or "5 units" would ground "1.00 AED each, total 5.00 AED".
MONEY_TAG = "money:"


def figures(text: str) -> set[str]:
    """All numbers in a text (a tool result), in every reading; money amounts also as `money:<value>`."""
    cleaned = PLACEHOLDER.sub(" ", _ascii_digits(text))
    found: set[str] = set()
    for match in _ANY_NUMBER.finditer(cleaned):
        found |= interpretations(match.group(0))
    for match in _MONEY.finditer(cleaned):
        found |= as_money(_amount_readings(match.group("a") or match.group("b") or match.group("c")))
    return found


_THOUSANDS_OF_ZEROS = re.compile(r"\d{1,3}(?:[.,\u00a0\u202f ']000)+")


def _amount_readings(number: str) -> set[str]:
    """Readings of an amount: "AED 1,000" or "5.000 руб" is a thousand-grouped amount, never 1 or 5."""
    if _THOUSANDS_OF_ZEROS.fullmatch(_ascii_digits(number).strip()):
        return {_canonical(Decimal(re.sub(r"\D", "", _ascii_digits(number))))}
    return interpretations(number)


def as_money(values: Iterable[str]) -> set[str]:
    """`values` (computed amounts: a quote total, a monthly payment) grounded as money, and as plain numbers."""
    plain = set(values)
    return plain | {MONEY_TAG + value for value in plain if not value.startswith(MONEY_TAG)}


@dataclass(frozen=True)
class Figure:
    kind: str  # "money" | "stock" | "discount"
    text: str
    values: frozenset[str]


def stated_figures(reply: str) -> list[Figure]:
    """The money, stock and discount figures a reply states."""
    cleaned = PLACEHOLDER.sub(" ", _ascii_digits(reply))
    found: list[Figure] = []
    for match in _MONEY.finditer(cleaned):
        number = match.group("a") or match.group("b") or match.group("c")
        found.append(Figure("money", number, frozenset(interpretations(number))))
    for match in _STOCK.finditer(cleaned):
        number = match.group("a") or match.group("b")
        found.append(Figure("stock", number, frozenset(interpretations(number))))
    for match in _PERCENT.finditer(cleaned):
        window = cleaned[max(0, match.start() - 30) : match.end() + 30]
        if re.search(_DISCOUNT_WORDS, window):
            found.append(Figure("discount", match.group("p"), frozenset(interpretations(match.group("p")))))
    return found


def ungrounded(reply: str, allowed: Iterable[str], *, discount_cap: Decimal) -> list[Figure]:
    """Figures in the reply that no tool result (or the playbook) supports."""
    allowed_set = set(allowed)
    problems: list[Figure] = []
    for figure in stated_figures(reply):
        if figure.kind == "money":
            if {MONEY_TAG + value for value in figure.values} & allowed_set:
                continue
        elif figure.values & allowed_set:
            continue
        if figure.kind == "discount" and any(
            Decimal(value) <= discount_cap for value in figure.values if _is_decimal(value)
        ):
            continue
        problems.append(figure)
    return problems


def _is_decimal(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True
