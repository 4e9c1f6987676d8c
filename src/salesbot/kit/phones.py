"""Phone numbers: the one detector for free text and the one normaliser for addresses, used everywhere.

`PhoneDetector.find` is what keeps phone numbers away from the model (`agent/pii.py`) and out of the logs
(`kit/logging.py`). Candidates are found broadly: digit runs in any script (so Arabic-Indic ``٠-٩`` and Persian
``۰-۹`` too) with the separators people type (spaces, dashes, dots, parentheses), glued to letters or after a
"/" (``wa.me/971501234567``, ``тел79011234567``, ``رقم0501234567``). Each candidate is then decided:

1. dates with a four-digit year, year ranges and times are never candidates;
2. fewer than 7 or more than 15 digits (17 after a ``00`` prefix) is not a phone;
3. written as a phone, it is one: a leading ``+``, an ``(area)`` group, or right after a phone word (``tel:``,
   ``wa.me/``, ``phone``, ``тел``, ``номер``, ``رقم``, ``هاتف``...);
4. an amount is not: next to a currency (``4500 AED``, ``₽``, ``درهم``), with decimals (``1234567.89``) or in
   thousands groups of at most 8 digits (``1 249 000``);
5. otherwise it is a phone when libphonenumber validates it in the business's region (``0501234567`` in AE), as
   an international number after ``00``, or, with 10+ digits, as an international number written without
   the ``+`` (``79011234567``, ``971501234567``, the way WhatsApp links and chat ids write them).

So prices, quantities, SKUs, order numbers and years of normal sales text stay: ``2 x 4500 AED``, ``SKU LP-1001``,
``order 2024-118`` are not valid numbers. A run that is not a phone as a whole is tried in parts (contiguous digit
groups, longest first), so ``3 0501234567`` gives up the phone and keeps the quantity; a part must show a trunk
prefix or a country code (``5440 7440 3520`` holds a valid landline that nobody writes like that). Numbers the
caller exempts (the business's own public numbers) are never reported, however they are written.

The normaliser side: `normalize_phone` (a typed number to ``+digits``), `phone_from_chat_id` (a provider's chat
address to ``+digits``) and `digits_only` share one digit rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers

DEFAULT_REGION = "AE"
MIN_DIGITS = 7
MAX_DIGITS = 15
# Without a "+", an international number needs this many digits (country code included) to be taken as one.
MIN_BARE_INTERNATIONAL_DIGITS = 10

_NON_DIGITS = re.compile(r"\D+")
_ADDRESS_NOISE = re.compile(r"[\s\-().]")
_ADDRESS = re.compile(r"\+?[0-9]{3,20}")

# Separators inside a written number: spaces (also no-break and narrow), dashes, dots, parentheses and the
# direction marks that Arabic keyboards insert around digits.
_SEPARATORS = " \u00a0\u202f\u2009-\u2010\u2011\u2012\u2013.()\u200e\u200f\u061c"
_SEP = "[" + re.escape(_SEPARATORS) + "]"
_RUN = re.compile(r"(?<![\d+])(?:\+[ \u00a0]?|\(\+?)?\d(?:\d|" + _SEP + r"{1,3}\d)*")
# MIN_DIGITS digits, each at most three separators from the next: every run `find` looks at holds one, so a text
# without any (most log lines: "127.0.0.1:53122 - POST ... 200") has no phone and skips the detector's real work.
_LONG_ENOUGH = re.compile(r"\d(?:" + _SEP + r"{0,3}\d){" + str(MIN_DIGITS - 1) + "}")
_GROUP = re.compile(r"\d+")
_AREA_GROUP = re.compile(r"\(\+?\d{1,5}\)" + _SEP + r"*\d")

# Spans that look numeric but are dates or times. A date counts only when it does not continue into more digit
# groups (then it is more likely part of a phone number such as "+7 901 12-05-2026").
_NOT_AFTER_DIGITS = r"(?<![\d+])(?<![\d+][ \u00a0.\-(])"
_NOT_BEFORE_DIGITS = r"(?![ \u00a0.\-)]?(?!(?:[01]?\d|2[0-3]):[0-5]\d)\d)"
_DATES_AND_TIMES = re.compile(
    "|".join(
        [
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
        ]
    )
)

# Words right before a number that say it is a phone number (the number may be glued to them: "тел79011234567").
_PHONE_WORDS = [
    *("tel", "phone", "mobile", "mob", "cell", "whatsapp", "watsapp", "wa.me", "call", "fax"),
    *("тел", "телефон", "моб", "мобильный", "номер", "ватсап", "вотсап"),
    *("رقم", "رقمي", "هاتف", "هاتفي", "جوال", "موبايل", "تلفون", "واتساب", "واتس"),
]
# Longest first, so "телефон" is not read as "тел" + "ефон".
_PHONE_WORD = re.compile(
    r"(?i:\b(?:" + "|".join(map(re.escape, sorted(_PHONE_WORDS, key=len, reverse=True))) + r"))(?=[^\w+]{0,3}[\d+(])"
)
_CURRENCY_WORDS = (
    r"usd|eur|gbp|rub|aed|sar|kzt|uah|qar|kwd|omr|bhd|egp|inr|руб(?:\.|лей|ля|ль)?|р\.|тыс\.?|млн\.?"
    r"|dollars?|euros?|dirhams?|riyals?|درهم|دراهم|ريال|دولار|د\.إ|ر\.س"
)
# A currency may follow the cents: "42000000.00 AED" is an amount even when only "42000000" is looked at.
_CURRENCY_AFTER = re.compile(r"(?:[.,]\d{1,2})?\s?(?:[$€£¥₽₸₴]|(?i:(?:" + _CURRENCY_WORDS + r")(?!\w)))")
_CURRENCY_BEFORE = re.compile(r"(?:[$€£¥₽₸₴]|(?<!\w)(?i:" + _CURRENCY_WORDS + r"))")
_THOUSANDS = re.compile(r"\d{1,3}(?:[ \u00a0\u202f.]\d{3})+(?:[.,]\d{1,2})?")
_DECIMAL = re.compile(r"\d+[.,]\d{2}")

_BLANK = "\x00"


@dataclass
class _Cache:
    """What one `find` call learnt about its text, so a long run's many windows cost little each.

    `labelled`: positions a number may start at right after a phone word ("tel: " -> the positions after "tel",
    "tel:" and "tel: "); `after_currency`: positions right after a currency sign or word; `verdicts` by (digits,
    phone-shaped, next to a currency, part of a run); `currency_after` by window end.
    """

    labelled: set[int]
    after_currency: set[int]
    verdicts: dict[tuple[str, bool, bool, bool], str | None] = field(default_factory=dict)
    currency_after: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> _Cache:
        return cls(_positions_after(_PHONE_WORD, text), _positions_after(_CURRENCY_BEFORE, text))

    def currency_after_end(self, text: str, end: int) -> bool:
        if end not in self.currency_after:
            self.currency_after[end] = _CURRENCY_AFTER.match(text, end) is not None
        return self.currency_after[end]


def _positions_after(pattern: re.Pattern[str], text: str) -> set[int]:
    """Where a match of `pattern` ends, and the up to 3 positions after it over spaces and punctuation."""
    positions: set[int] = set()
    for match in pattern.finditer(text):
        end = match.end()
        positions.add(end)
        for offset in range(3):
            if end + offset >= len(text) or text[end + offset].isalnum() or text[end + offset] in "_+":
                break
            positions.add(end + offset + 1)
    return positions


class _AsciiDigits(dict[int, int]):
    """A `str.translate` table that maps every decimal digit (any script) to its ASCII digit, filled on demand."""

    def __missing__(self, code: int) -> int:
        char = chr(code)
        self[code] = ord(str(int(char))) if char.isdecimal() else code
        return self[code]


_ASCII_DIGITS = _AsciiDigits()


def ascii_digits(text: str) -> str:
    """`text` with every decimal digit, in any script, written as an ASCII digit ("٠٥٠" -> "050")."""
    return text.translate(_ASCII_DIGITS)


def digits_only(value: str) -> str:
    """The digits of `value` as ASCII ("+٩٧١ ٥٠" -> "97150")."""
    return ascii_digits(_NON_DIGITS.sub("", value))


def normalize_phone(phone: str) -> str:
    """`+1 (555) 010-0` -> `+15550100`; raises `ValueError` for anything that is not a phone-like address.

    A chat address, not a validated number: the console and the simulator accept any 3-20 digits.
    """
    cleaned = ascii_digits(_ADDRESS_NOISE.sub("", phone))
    if not _ADDRESS.fullmatch(cleaned):
        raise ValueError("phone must be 3-20 digits, optionally starting with +")
    return cleaned


def phone_from_chat_id(chat_id: str) -> str:
    """`whatsapp:+14155238886` (Twilio), `79011234567` (Wazzup) or `+1 555 0100` (console) -> `+14155238886`.

    Returns the chat id unchanged when it holds no digits (a channel without phone numbers).
    """
    number = digits_only(chat_id)
    return f"+{number}" if number else chat_id


def mask_phone(chat_id: str) -> str:
    """Enough of the number to tell customers apart in a list, not enough to dial: `+79•••••••67`."""
    number = digits_only(chat_id)
    if len(number) <= 4:
        return "•" * len(number) if number else ""
    return f"+{number[:2]}{'•' * (len(number) - 4)}{number[-2:]}"


def supported_region(region: str) -> str:
    """`region` as an upper-case ISO 3166 code that libphonenumber knows; `ValueError` otherwise."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r} (use an ISO 3166 code such as AE, RU, US)")
    return code


@dataclass(frozen=True, slots=True)
class PhoneMatch:
    start: int
    end: int
    # E.164 form ("+971501234567"): the same number however it was written.
    number: str


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse(digits: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None


class PhoneDetector:
    """Finds phone numbers in free text; `region` is the business's (PHONE_DEFAULT_REGION)."""

    def __init__(self, region: str = DEFAULT_REGION, *, exempt: Iterable[str] = ()) -> None:
        self.region = supported_region(region)
        self._exempt = frozenset(number for number in (self.normalize(value) for value in exempt) if number)
        # Detectors with equal keys find the same numbers in any text (for callers that remember what was found).
        self.key: tuple[str, frozenset[str]] = (self.region, self._exempt)

    def normalize(self, written: str) -> str | None:
        """The E.164 form of a number written any way ("050 123 4567" in AE -> "+971501234567"), or None."""
        digits = digits_only(written)
        if not MIN_DIGITS <= len(digits) <= MAX_DIGITS + 2:
            return None
        if written.strip().startswith("+"):
            number = _parse("+" + digits, None)
            return _e164(number) if number is not None else "+" + digits
        return self._validated(digits) or self._guess(digits)

    def find(self, text: str, *, skip: Iterable[tuple[int, int]] = ()) -> list[PhoneMatch]:
        """The phone numbers in `text`, in order; spans in `skip` (SKUs, placeholders...) are never part of one."""
        if _LONG_ENOUGH.search(text) is None:
            return []
        work = list(text)
        for start, end in skip:
            work[start:end] = _BLANK * (end - start)
        blanked = "".join(work)
        blanked = _DATES_AND_TIMES.sub(lambda match: _BLANK * len(match.group(0)), blanked)
        cache = _Cache.of(blanked)
        found: list[PhoneMatch] = []
        for run in _RUN.finditer(blanked):
            groups = [(run.start() + g.start(), run.start() + g.end()) for g in _GROUP.finditer(run.group(0))]
            if sum(end - start for start, end in groups) < MIN_DIGITS or _amount_shaped(run.group(0)):
                continue
            found.extend(self._scan(blanked, run.start(), groups, cache))
        return sorted(found, key=lambda match: match.start)

    def redact(self, text: str, replacement: str = "[phone]") -> str:
        """`text` with every phone number replaced by `replacement`."""
        out: list[str] = []
        position = 0
        for match in self.find(text):
            out.append(text[position : match.start])
            out.append(replacement)
            position = match.end
        out.append(text[position:])
        return "".join(out)

    def _scan(self, text: str, run_start: int, groups: list[tuple[int, int]], cache: _Cache) -> list[PhoneMatch]:
        """Phones in one run: windows of contiguous digit groups, the longest (then leftmost) first, none overlapping.

        Only windows of 7-17 digits are looked at, and what decides a window is worked out once per group, so the
        work stays linear in the run's length (a 10,000-character run of digits and spaces is no trap).
        """
        count = len(groups)
        windows: list[tuple[int, int]] = []
        for i in range(count):
            total = 0
            for j in range(i, count):
                total += groups[j][1] - groups[j][0]
                if total > MAX_DIGITS + 2:
                    break
                if total >= MIN_DIGITS:
                    windows.append((i, j + 1))
        windows.sort(key=lambda window: (window[0] - window[1], window[0]))
        digits = [ascii_digits(text[start:end]) for start, end in groups]
        # Where window i starts: a window that begins the run keeps its "+" or "(" prefix, a later one may start
        # at a "(" of its own. Whether a phone word or a currency comes right before it, or a currency after it.
        starts = [run_start] + [start - 1 if text[start - 1] == "(" else start for start, _ in groups[1:]]
        international = text[run_start] == "+" or text.startswith("(+", run_start)
        labelled = [start in cache.labelled for start in starts]
        before = [start in cache.after_currency for start in starts]
        after = [cache.currency_after_end(text, end) for _, end in groups]
        has_parens = "(" in text[run_start : groups[-1][1]]
        taken = [False] * count
        found: list[PhoneMatch] = []
        for i, j in windows:
            if any(taken[i:j]):
                continue
            start, end = starts[i], groups[j - 1][1]
            number_digits = "".join(digits[i:j])
            if i == 0 and international:
                number = self._international(number_digits)
            else:
                area = has_parens and _AREA_GROUP.search(text, start, end) is not None
                # A part of a run must say where it starts (trunk "0", a country code, "00"): "compare 5440 7440
                # 3520" holds a valid Ras al-Khaimah landline, but nobody writes one like that.
                key = (number_digits, labelled[i] or area, before[i] or after[j - 1], j - i < count)
                if key not in cache.verdicts:
                    cache.verdicts[key] = self._decide(*key)
                number = cache.verdicts[key]
            if number is None:
                continue
            taken[i:j] = [True] * (j - i)
            if number not in self._exempt:
                found.append(PhoneMatch(start, end, number))
        return found

    @staticmethod
    def _international(digits: str) -> str | None:
        """A number written with "+": a phone whenever it has 7-15 digits, valid or not (privacy first)."""
        if len(digits) > MAX_DIGITS:
            return None
        number = _parse("+" + digits, None)
        return _e164(number) if number is not None else "+" + digits

    def _decide(self, digits: str, phone_shaped: bool, amount: bool, part: bool) -> str | None:
        if phone_shaped:
            return self._validated(digits) or (self._guess(digits) if len(digits) <= MAX_DIGITS else None)
        if amount:
            return None
        return self._validated(digits, prefixed=part)

    def _validated(self, digits: str, *, prefixed: bool = False) -> str | None:
        """The E.164 form when libphonenumber validates `digits` (national, 00-international or bare international)."""
        candidates: list[tuple[str, str | None]] = [(digits, self.region)]
        if digits.startswith("00"):
            candidates.append(("+" + digits[2:], None))
        elif len(digits) >= MIN_BARE_INTERNATIONAL_DIGITS and not digits.startswith("0"):
            candidates.append(("+" + digits, None))
        for value, region in candidates:
            number = _parse(value, region)
            if number is None or not phonenumbers.is_valid_number(number):
                continue
            # `prefixed`: a trunk prefix or a country code was written, not only the national number.
            if prefixed and len(phonenumbers.national_significant_number(number)) >= len(digits):
                continue
            return _e164(number)
        return None

    def _guess(self, digits: str) -> str | None:
        """A number written as a phone but not valid anywhere we know: its E.164 form as the region reads it."""
        number = _parse(digits, self.region)
        return _e164(number) if number is not None else None


def _amount_shaped(run: str) -> bool:
    """A whole run written as an amount: decimals (1234567.89) or thousands groups of up to 8 digits (1 249 000)."""
    if run.startswith(("+", "(")):
        return False
    plain = ascii_digits(run)
    digit_count = sum(char.isdecimal() for char in plain)
    return bool(_DECIMAL.fullmatch(plain) or (digit_count <= 8 and _THOUSANDS.fullmatch(plain)))
