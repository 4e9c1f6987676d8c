"""Reading one customer message: intents, SKUs and quantities, budget, category, references to what was shown.

Pure functions over text; the words come from the language files (`lexicon`). Nothing here calls a tool.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache

from salesbot.agent.language import layout_slip
from salesbot.agent.offline.lexicon import FLAGS, lexicon
from salesbot.agent.offline.names import unconfuse
from salesbot.agent.turn_context import TurnContext, TurnItem
from salesbot.models import SalesStage

MAX_SKU_LOOKUPS = 3
DEFAULT_FINANCING_MONTHS = 12

_SKU = re.compile(r"(?<![\w\[])(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![\w\]])")
_PLAIN_SKU = re.compile(r"(?<![\w\[-])[A-Za-z]{1,4}\d{2,6}[A-Za-z]?(?![\w\]])")
_NOT_SKUS = re.compile(
    r"^(?:\d+(?:pcs|pc|x|am|pm|k|kg|cm|mm|m|gb|tb)|[a-z]\d|mp\d|covid-?19|usb-c|wi-fi|e\d{2}|m\d)$", re.IGNORECASE
)
_MONTHS = re.compile(r"(\d{1,3})\s?(?:months?|мес\w*|شهر|شهور|أشهر|اشهر)", FLAGS)
_PERCENT = re.compile(r"(\d{1,2}(?:[.,]\d{1,2})?)\s?%")
_EMAIL_PLACEHOLDER = re.compile(r"\[EMAIL_\d+\]")
PLACEHOLDER = re.compile(r"\[(?:PHONE|EMAIL|CARD)_\d+\]")
_AMOUNT = r"\d{1,3}(?:[ ,.]\d{3})+|\d+(?:[.,]\d+)?"

# Currency words -> ISO code (budgets in another currency than the business's are not applied as a filter).
_CURRENCIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(rf"(?<!\w)(?:{words})(?!\w)", FLAGS))
    for code, words in (
        ("AED", r"aed|dhs?|dirhams?|дирхам\w*|درهم|دراهم|د\.إ"),
        ("RUB", r"rub|rubles?|roubles?|руб\w*|₽|روبل"),
        ("USD", r"usd|\$|dollars?|долл\w*|دولار"),
        ("EUR", r"eur|€|euros?|евро|يورو"),
        ("SAR", r"sar|riyals?|риял\w*|ريال"),
        ("GBP", r"gbp|£|pounds?|фунт\w*|جنيه"),
        ("KZT", r"kzt|tenge|тенге|₸"),
        ("UAH", r"uah|hryvnias?|грив\w*|₴"),
    )
)

_NAME_PATTERNS = [
    re.compile(r"\b(?i:my name is|i am|i'm|this is)\s+([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)?)"),
    # "Name Layla Aziz, company ...": a label at the start of the message or of a comma-separated part.
    re.compile(r"(?:^|[,;]\s*)(?i:name)\s*:?\s+([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)?)"),
    re.compile(
        r"(?i:меня зовут|моё имя|мое имя|мене звати|моє ім'я)\s+([А-ЯЁІЇЄҐA-Z][\w'’-]+(?:\s+[А-ЯЁІЇЄҐA-Z][\w'’-]+)?)"
    ),
    re.compile(r"(?:اسمي|انا اسمي|أنا اسمي)\s+([^\s،,.]+(?:\s+[^\s،,.]+)?)"),
]
_NOT_NAMES = frozenset({"looking", "interested", "searching", "from", "here", "back", "ready", "the", "a"})
_COMPANY_PATTERNS = [
    re.compile(
        r"\b(?:company|company name|my company|we are|work (?:for|at))\s*(?:is|:)?\s+"
        r"([\w&.'’-]+(?:\s+[\w&.'’-]+){0,3}?)(?=\s*(?:[,.;!?]|\band\b|\bmy\b|\bemail\b|\be-mail\b|$))",
        FLAGS,
    ),
    re.compile(
        r"(?:компания|компании|из компании|организация|компанія|з компанії|організація)\s*:?\s*"
        r"([«\"']?[\w&.-]+(?:\s+[\w&.»\"'-]+){0,3}?)(?=\s*(?:[,.;!?]|\sи\s|$))",
        FLAGS,
    ),
    re.compile(r"((?:ООО|ОАО|ЗАО|АО|ИП)\s+[«\"']?[\w&.-]+(?:\s+[\w&.»\"'-]+){0,2})", re.UNICODE),
    re.compile(r"(?:شركة|من شركة|الشركة)\s*:?\s*(\S+(?:\s+\S+){0,2}?)(?=\s*(?:[،,.;!?]|\sو|$))"),
]
_FROM_COMPANY = re.compile(r"\b(?:from|at)\s+([A-Z][\w&.'’-]*(?:\s+[A-Z][\w&.'’-]*){0,3})")


def ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() and not char.isascii() else char for char in text)


@dataclass
class Details:
    name: str | None = None
    company: str | None = None
    email: str | None = None

    def any(self) -> bool:
        return bool(self.name or self.company or self.email)


@dataclass(frozen=True)
class Budget:
    """A price ceiling per unit in the business's currency, or the other currency the customer named."""

    max_price: Decimal | None
    other_currency: str | None = None


@dataclass(frozen=True)
class Segment:
    """One part of a message that names a product, with its quantity ("3 of the ThinkPad E14")."""

    text: str
    qty: int | None


@dataclass
class Turn:
    text: str
    context: TurnContext
    intents: set[str]
    skus: list[str]
    items: list[TurnItem]
    details: Details
    budget: Budget
    months: int
    category: str | None
    quantity: int | None
    ordinal: int | None
    ordinals: list[int]
    segments: list[Segment]
    # The customer said how many units of a named product: choosing it.
    explicit_qty: bool = False
    # What the conversation said before this message (filled by the model from the history).
    previous_skus: list[str] = field(default_factory=list[str])
    remembered_query: str | None = None
    remembered_category: str | None = None
    remembered_quantity: int | None = None
    # A discount the customer asks for on the quote ("with the 10% volume discount").
    discount_pct: Decimal | None = None

    @property
    def language(self) -> str:
        return self.context["language"]

    @property
    def wanted_category(self) -> str | None:
        return self.category or self.remembered_category

    @property
    def wanted_quantity(self) -> int | None:
        return self.quantity or self.remembered_quantity


def detect_intents(text: str) -> set[str]:
    return {name for name, pattern in lexicon().intents.items() if pattern.search(text)}


def find_skus(text: str) -> list[str]:
    cleaned = PLACEHOLDER.sub(" ", text)
    found: list[str] = []
    for pattern in (_SKU, _PLAIN_SKU):
        for match in pattern.finditer(cleaned):
            token = match.group(0).upper()
            if not _NOT_SKUS.match(token) and token not in found:
                found.append(token)
    return found


def _number(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    return lexicon().numbers.get(token.casefold())


@cache
def _number_alternatives() -> str:
    words = sorted(lexicon().numbers, key=len, reverse=True)
    return "|".join([r"\d{1,5}", *(re.escape(word) for word in words)])


def find_quantity(text: str, sku: str | None = None) -> int | None:
    """Units asked for: "3 x SKU", "SKU x 3", "5 laptops", "five units", "3 of them"."""
    lex = lexicon()
    numbers = _number_alternatives()
    if sku:
        escaped = re.escape(sku)
        for pattern in (
            rf"(?<![\w.,])({numbers})\s?(?:x|×|\*|of|pcs|units?|шт\.?|штук[аи]?|из|من|قطع|قطعة)?\s?{escaped}",
            rf"{escaped}\s?(?:x|×|\*|-|:)\s?(\d{{1,5}})",
            rf"{escaped}[^\d\n]{{0,12}}?(\d{{1,5}})\s?(?:{lex.units})(?!\w)",
        ):
            match = re.search(pattern, text, FLAGS)
            if match and (value := _number(match.group(1))) is not None:
                return max(1, value)
    without_money = _budget_spans(text)
    for match in re.finditer(rf"(?<![\w.,])({numbers})(?!\w)", without_money, FLAGS):
        rest = without_money[match.end() : match.end() + 40]
        head = re.match(r"\s*(?:[\w-]+\s+){0,2}?", rest)
        after = rest[head.end() if head else 0 :]
        if re.match(rf"\s*(?:{lex.units})(?!\w)", rest, FLAGS) or any(
            pattern.match(after) or pattern.match(rest.lstrip()) for _, pattern in lex.categories
        ):
            value = _number(match.group(1))
            if value is not None and 0 < value <= 10_000:
                return value
    return None


@cache
def _budget_regex() -> re.Pattern[str]:
    lex = lexicon()
    currencies = "|".join(pattern.pattern for _, pattern in _CURRENCIES)
    return re.compile(
        rf"(?:(?P<max>{lex.budget_max})|(?P<about>{lex.budget_about}))\s*(?:of|is|:|-)?\s*"
        rf"(?P<cur1>{currencies})?\s*(?P<amount>{_AMOUNT})\s*(?P<k>{lex.thousand})?(?!\w)\s*(?P<cur2>{currencies})?"
        rf"|(?P<amount2>{_AMOUNT})\s*(?P<k2>{lex.thousand})?\s*(?P<cur3>{currencies})",
        FLAGS,
    )


def _budget_spans(text: str) -> str:
    """The text with budget amounts blanked, so "4000 AED each" is not taken for 4000 units."""
    return _budget_regex().sub(lambda match: " " * len(match.group(0)), text)


def _amount(raw: str) -> Decimal | None:
    cleaned = raw.replace(" ", "")
    if re.fullmatch(r"\d{1,3}(?:[,.]\d{3})+", cleaned):
        cleaned = re.sub(r"[,.]", "", cleaned)
    try:
        return Decimal(cleaned.replace(",", "."))
    except InvalidOperation:
        return None


def _currency_code(text: str | None) -> str | None:
    if not text:
        return None
    for code, pattern in _CURRENCIES:
        if pattern.fullmatch(text.strip()):
            return code
    return None


def parse_budget(text: str, currency: str, quantity: int | None) -> Budget:
    """The price ceiling per unit: "under 3000", "around 4000 AED each", "до 5000", "20k in total for 5"."""
    lex = lexicon()
    for match in _budget_regex().finditer(text):
        amount_text = match.group("amount") or match.group("amount2")
        thousand = match.group("k") or match.group("k2")
        named = match.group("cur1") or match.group("cur2") or match.group("cur3")
        if amount_text is None:
            continue
        amount = _amount(amount_text)
        if amount is None or amount <= 0:
            continue
        if thousand:
            amount *= 1000
        code = _currency_code(named)
        if code is not None and code != currency.upper():
            return Budget(None, other_currency=code)
        rest = text[match.end() : match.end() + 30]
        if quantity and quantity > 1 and lex.in_total.search(text) and not lex.per_unit.search(rest):
            amount = (amount / quantity).quantize(Decimal("0.01"))
        return Budget(amount)
    return Budget(None)


def find_category(text: str) -> str | None:
    """The catalog category the customer names; "laptop bag" is a bag (the second of two adjacent nouns)."""
    found: list[tuple[int, int, str]] = []
    for name, pattern in lexicon().categories:
        match = pattern.search(text)
        if match:
            found.append((match.start(), match.end(), name))
    if not found:
        return None
    found.sort()
    first = found[0]
    for other in found[1:]:
        if 0 <= other[0] - first[1] <= 2:
            return other[2]
    return first[2]


def find_ordinals(text: str) -> list[int]:
    """Positions in a list the customer refers to, in the order they are named ("the first and the third")."""
    found = [(match.start(), position) for position, pattern in lexicon().ordinals for match in pattern.finditer(text)]
    return [position for _, position in sorted(found)]


def find_ordinal(text: str) -> int | None:
    ordinals = find_ordinals(text)
    return ordinals[0] if ordinals else None


def split_segments(text: str) -> list[Segment]:
    """ "1 of X and 3 of Y" -> [Segment("X", 1), Segment("Y", 3)]; one segment when nothing joins parts."""
    lex = lexicon()
    parts = [part.strip(" ,.;") for part in re.split(rf"[,;]|(?<!\w)(?:{lex.joiners})(?!\w)", text, flags=FLAGS)]
    numbers = _number_alternatives()
    segments = []
    for part in parts:
        if not part:
            continue
        match = re.match(
            rf"^(?:.*?\s)?({numbers})\s*(?:x|×|\*|of|pcs|units?|шт\.?|штук[аи]?|من|قطع\w*)?\s+(?:the\s+)?(.+)$",
            part,
            FLAGS,
        )
        if match and _number(match.group(1)) is not None and not match.group(2).strip().isdigit():
            segments.append(Segment(match.group(2).strip(), _number(match.group(1))))
        else:
            segments.append(Segment(part, None))
    return segments


def parse_details(text: str, *, positional: bool) -> Details:
    details = Details()
    email = _EMAIL_PLACEHOLDER.search(text)
    if email:
        details.email = email.group(0)
    for pattern in _NAME_PATTERNS:
        match = pattern.search(text)
        if match and match.group(1).split()[0].casefold() not in _NOT_NAMES:
            details.name = match.group(1).strip(" ,.")
            break
    for pattern in _COMPANY_PATTERNS:
        match = pattern.search(text)
        if match:
            details.company = match.group(1).strip(" ,.«»\"'")
            break
    if details.company is None and details.name:
        match = _FROM_COMPANY.search(text)
        if match:
            details.company = match.group(1).strip(" ,.")
    pieces = [piece.strip(" .") for piece in re.split(r"[,;\n،]", PLACEHOLDER.sub("", text)) if piece.strip(" .")]
    # A message that names products is a request, not a list of details ("Actually, I want 5 LG-24MP400").
    request = _SKU.search(text) is not None
    if positional and not request and not (details.name and details.company) and (details.email or len(pieces) >= 2):
        # "John Smith, Acme Ltd, [EMAIL_1]" while we are collecting details: short segments that are no request.
        segments = [
            piece
            for piece in pieces
            if len(piece.split()) <= 5
            and not any(char.isdigit() for char in piece)
            and not detect_intents(piece) - {"thanks", "greeting", "affirm"}
        ]
        if details.name is None and segments:
            details.name = segments.pop(0)
        elif details.name in segments:
            segments.remove(details.name)
        if details.company is None and segments:
            details.company = segments[0]
    return details


def normalize(text: str, language: str) -> str:
    """Digits as ASCII, look-alike letters inside model names as Latin, a wrong-layout "yes" read back."""
    text = unconfuse(ascii_digits(text))
    slip = layout_slip(text, language)
    return slip if slip is not None else text


def parse_turn(text: str, context: TurnContext) -> Turn:
    normalized = normalize(text, context["language"])
    intents = detect_intents(normalized)
    skus = find_skus(normalized)[:MAX_SKU_LOOKUPS]
    quantity = find_quantity(normalized)
    items: list[TurnItem] = []
    explicit = False
    for sku in skus:
        qty = find_quantity(normalized, sku)
        explicit = explicit or qty is not None
        if qty is None:
            known = {item["sku"].upper(): item["qty"] for item in context["selected"]}
            qty = known.get(sku, 1) if len(skus) > 1 else quantity or known.get(sku, 1)
        items.append(TurnItem(sku=sku, qty=qty))
    collecting = context["stage"] == SalesStage.COMPANY_DETAILS.value
    details = parse_details(normalized, positional=collecting)
    budget = parse_budget(normalized, context["currency"], quantity)
    months_match = _MONTHS.search(normalized)
    months = int(months_match.group(1)) if months_match else DEFAULT_FINANCING_MONTHS
    explicit = explicit or (bool(skus) and quantity is not None)
    percent = _PERCENT.search(normalized) if "objection" in intents else None
    return Turn(
        text=normalized,
        context=context,
        intents=intents,
        skus=skus,
        items=items,
        details=details,
        budget=budget,
        months=months,
        category=find_category(normalized),
        quantity=quantity,
        ordinal=find_ordinal(normalized),
        ordinals=find_ordinals(normalized),
        segments=split_segments(PLACEHOLDER.sub(" ", normalized)),
        explicit_qty=explicit,
        discount_pct=Decimal(percent.group(1).replace(",", ".")) if percent else None,
    )
