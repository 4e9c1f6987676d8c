"""PII masking: phone numbers, e-mail addresses and card-like numbers become per-conversation placeholders.

The model never sees a customer's contact details: every text that reaches it (new messages, history, the
rolling summary, tool results, instructions) goes through `PiiMasker.mask`, which replaces them with stable
placeholders such as ``[PHONE_1]``, ``[EMAIL_1]`` and ``[CARD_1]``. The mapping lives on the conversation
(`conversation.pii_map`), so the same value gets the same placeholder across turns. The reply is unmasked
before it is sent, and tools resolve placeholders in their arguments.

What is deliberately *not* masked: SKUs (``AB-1234567``), prices and amounts (``1 249 000 ₽``, ``1249.00``),
quantities and dates/times. The rules for telling a phone number from those, in order:

- a digit run (digits in any script, so Arabic-Indic ``٠-٩`` too) with phone separators (space, dash, dot,
  parentheses) that starts after a letter, ``-``, ``/``, ``#`` or ``@`` is part of a code or URL, not a phone;
- dates with a four-digit year (ISO and day-first), times and ``SKU: ...`` labels are protected first;
- fewer than 7 digits is never PII; a leading ``+`` or ``00`` up to 15 digits is always a phone;
- 13-19 digits that pass the Luhn check, or 16-19 digits in any case, are a card number;
- an amount is a run next to a currency (``$``, ``USD``, ``₽``, ``руб``, ``درهم``...), a decimal amount
  (``1234567.89``), or thousands groups of up to 8 digits (``1 249 000``); everything else of 7-15 digits
  is a phone. A bare 3-3-3 group of nine digits is therefore masked: privacy wins over a rare amount.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum


class PiiKind(StrEnum):
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    CARD = "CARD"


PLACEHOLDER = re.compile(r"\[(PHONE|EMAIL|CARD)_(\d{1,6})\]")

_ATEXT = r"[\w!#$%&'*+/=?^`{|}~-]"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
EMAIL = re.compile(
    r"(?<![\w.!#$%&'*+/=?^`{|}~-])"
    + _ATEXT
    + r"+(?:\."
    + _ATEXT
    + r"+)*@(?:"
    + _LABEL
    + r"\.)+"
    + r"[^\W\d_](?:[\w-]{0,61}[^\W_])?"
    + r"(?![\w-])"
)

_KEY_PREFIX = re.compile(r"[A-Za-z_][\w-]*=(?=[^=]*@)")

# Spans that look numeric but are not contact details. A date counts only when it does not continue into
# more digit groups (then it is more likely part of a phone number such as "+7 901 12-05-2026").
_NOT_AFTER_DIGITS = r"(?<![\d+])(?<![\d+][ \u00a0.\-(])"
_NOT_BEFORE_DIGITS = r"(?![ \u00a0.\-)]?(?!(?:[01]?\d|2[0-3]):[0-5]\d)\d)"
_PROTECTED = re.compile(
    "|".join(
        [
            r"\[(?:PHONE|EMAIL|CARD)_\d{1,6}\]",
            # ISO dates 2026-11-21, 2026.11.21, 2026/11/21
            _NOT_AFTER_DIGITS
            + r"(?:19|20)\d{2}(?P<iso>[-./])(?:0?[1-9]|1[0-2])(?P=iso)(?:0?[1-9]|[12]\d|3[01])"
            + _NOT_BEFORE_DIGITS,
            # day-first or month-first dates with a four-digit year: 21.11.2026, 11/21/2026
            _NOT_AFTER_DIGITS
            + r"(?:0?[1-9]|[12]\d|3[01])(?P<dmy>[-./])(?:0?[1-9]|[12]\d|3[01])(?P=dmy)(?:19|20)\d{2}"
            + _NOT_BEFORE_DIGITS,
            # year ranges 2019-2026
            _NOT_AFTER_DIGITS + r"(?:19|20)\d{2}\s?[-–—]\s?(?:19|20)\d{2}" + _NOT_BEFORE_DIGITS,
            # times 10:30, 9:05:59
            r"(?<!\d)(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?!\d)",
            # SKU labels: "SKU 10023456", "артикул: 7712345"
            r"(?i:\bsku\b|\bart\.|артикул|\bарт\.)\s*[:#№]?\s*[^\W_][\w-]*",
        ]
    )
)

_SEPARATORS = " \u00a0\u202f-.()\u200e\u200f"
_NUMBER_RUN = re.compile(r"(?<![\w+/=#@\-])(?:\+[ \u00a0]?|\()?\d(?:\d|[" + re.escape(_SEPARATORS) + r"]{1,3}\d)*")
_CURRENCY_AFTER = re.compile(
    r"\s?(?:[$€£¥₽₸₴]|(?i:usd|eur|gbp|rub|aed|sar|kzt|uah|руб|р\.|тыс|млн|dollars?|euros?))|\s?(?:درهم|ريال|دولار|د\.إ|ر\.س)"
)
_CURRENCY_BEFORE = re.compile(r"(?:[$€£¥₽]|(?i:usd|eur|gbp|rub|aed|sar))\s?$")
_THOUSANDS = re.compile(r"\d{1,3}(?:[ \u00a0\u202f.]\d{3})+(?:[.,]\d{1,2})?")
_DECIMAL = re.compile(r"\d+[.,]\d{2}")


def _digits(text: str) -> str:
    return "".join(str(int(char)) for char in text if char.isdecimal())


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def classify_number(candidate: str, *, before: str = "", after: str = "") -> PiiKind | None:
    """Whether a digit run (with its surrounding text) is a phone, a card number, or not PII at all."""
    digits = _digits(candidate)
    count = len(digits)
    if count < 7:
        return None
    international = candidate.startswith("+") or (digits.startswith("00") and candidate[:1].isdecimal())
    if international and count <= 15:
        return PiiKind.PHONE
    if 13 <= count <= 19 and (count >= 16 or _luhn(digits)):
        return PiiKind.CARD
    if count > 15:
        return None
    if not candidate.startswith(("+", "(")):
        if _CURRENCY_AFTER.match(after) or _CURRENCY_BEFORE.search(before):
            return None
        plain = "".join(str(int(c)) if c.isdecimal() else c for c in candidate)
        if _DECIMAL.fullmatch(plain) or (count <= 8 and _THOUSANDS.fullmatch(plain)):
            return None
    return PiiKind.PHONE


class PiiMasker:
    """Masks and unmasks one conversation's PII; `mapping` (placeholder -> value) is stored on the conversation."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._by_placeholder: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        self._next: dict[PiiKind, int] = dict.fromkeys(PiiKind, 1)
        for placeholder, value in (mapping or {}).items():
            match = PLACEHOLDER.fullmatch(placeholder)
            if match is None or not isinstance(value, str):
                continue
            self._remember(placeholder, value, PiiKind(match.group(1)), int(match.group(2)))

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self._by_placeholder)

    def _remember(self, placeholder: str, value: str, kind: PiiKind, index: int) -> None:
        self._by_placeholder[placeholder] = value
        self._by_value.setdefault(value, placeholder)
        self._next[kind] = max(self._next[kind], index + 1)

    def _placeholder_for(self, value: str, kind: PiiKind, reserved: set[str]) -> str:
        existing = self._by_value.get(value)
        if existing is not None:
            return existing
        index = self._next[kind]
        while f"[{kind.value}_{index}]" in reserved:
            index += 1
        placeholder = f"[{kind.value}_{index}]"
        self._remember(placeholder, value, kind, index)
        return placeholder

    def mask(self, text: str) -> str:
        """Replace phones, e-mails and card numbers by placeholders (idempotent: placeholders stay as they are)."""
        if not text:
            return text
        # Placeholders already written in the text (by the customer or a previous pass) are never reused for a
        # different value, so unmask(mask(x)) == x holds for any x.
        reserved = {match.group(0) for match in PLACEHOLDER.finditer(text)} - self._by_placeholder.keys()
        out: list[str] = []
        position = 0
        for match in EMAIL.finditer(text):
            start = match.start()
            # "email=john@acme.com": the key is not part of the address (though RFC 5322 would allow it).
            key = _KEY_PREFIX.match(match.group(0))
            if key is not None:
                start += key.end()
            out.append(self._mask_numbers(text[position:start], reserved))
            out.append(self._placeholder_for(text[start : match.end()], PiiKind.EMAIL, reserved))
            position = match.end()
        out.append(self._mask_numbers(text[position:], reserved))
        return "".join(out)

    def _mask_numbers(self, segment: str, reserved: set[str]) -> str:
        out: list[str] = []
        position = 0
        for protected in _PROTECTED.finditer(segment):
            out.append(self._mask_runs(segment[position : protected.start()], reserved))
            out.append(protected.group(0))
            position = protected.end()
        out.append(self._mask_runs(segment[position:], reserved))
        return "".join(out)

    def _mask_runs(self, segment: str, reserved: set[str]) -> str:
        out: list[str] = []
        position = 0
        for match in _NUMBER_RUN.finditer(segment):
            candidate = match.group(0)
            kind = classify_number(
                candidate, before=segment[max(0, match.start() - 4) : match.start()], after=segment[match.end() :]
            )
            if kind is None:
                continue
            out.append(segment[position : match.start()])
            out.append(self._placeholder_for(candidate, kind, reserved))
            position = match.end()
        out.append(segment[position:])
        return "".join(out)

    def unmask(self, text: str) -> str:
        """Put the real values back for the placeholders this conversation knows; others stay as written."""
        if not text or not self._by_placeholder:
            return text
        return PLACEHOLDER.sub(lambda match: self._by_placeholder.get(match.group(0), match.group(0)), text)

    def resolve(self, value: str) -> str:
        """A tool argument as the model wrote it, with placeholders replaced by the real values."""
        return self.unmask(value).strip()

    def knows(self, placeholder: str) -> bool:
        return placeholder in self._by_placeholder
