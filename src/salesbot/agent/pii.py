"""PII masking: phone numbers, e-mail addresses and card-like numbers become per-conversation placeholders.

The model never sees a customer's contact details: every text that reaches it (new messages, history, the
rolling summary, tool results, instructions) goes through `PiiMasker.mask`, which replaces them with stable
placeholders such as ``[PHONE_1]``, ``[EMAIL_1]`` and ``[CARD_1]``. The mapping lives on the conversation
(`conversation.pii_map`), so the same value gets the same placeholder across turns. The reply is unmasked
before it is sent, and tools resolve placeholders in their arguments.

Phone numbers are found by the one phone detector, `salesbot.kit.phones.PhoneDetector` (see there for the
rules: every shape customers write, validated with libphonenumber in the business's region, so prices,
quantities, dates, years and order numbers stay). The masker adds what only it knows: the catalog's SKUs and
the business's own public numbers are exempt, e-mail addresses are found first, and 13-19 digit runs that
pass the Luhn check (or have 16-19 digits) are card numbers."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from enum import StrEnum

from salesbot.kit.phones import PhoneDetector, digits_only


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

# Card numbers: 13-19 digits (spaces or dashes between them), never starting with 0 or after a "+" (phones do).
_CARD = re.compile(r"(?<![\d+])(?<!\+ )(?![0٠۰])\d(?:[ \u00a0\-]?\d){12,18}(?![ \u00a0\-]?\d)")
# The PII spans found in recent texts (history messages, the instructions' sections come back every turn), per
# process: texts up to MAX_REMEMBERED_TEXT characters, the REMEMBERED_TEXTS most recently used.
REMEMBERED_TEXTS = 4096
MAX_REMEMBERED_TEXT = 16_000
SECTION_SEPARATOR = "\n\n"
_Found = tuple[int, int, PiiKind]
_found_cache: OrderedDict[tuple[Hashable, str], tuple[_Found, ...]] = OrderedDict()
_found_lock = threading.Lock()
# Catalog SKUs are looked for only when they hold this many digits: fewer can never be read as a phone number.
SKU_MIN_DIGITS = 7


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


def is_card_number(candidate: str) -> bool:
    """13-19 digits that pass the Luhn check, or 16-19 digits in any case."""
    digits = digits_only(candidate)
    return 13 <= len(digits) <= 19 and (len(digits) >= 16 or _luhn(digits))


def _sku_pattern(skus: Iterable[str]) -> re.Pattern[str] | None:
    wanted = sorted({sku.strip() for sku in skus if len(digits_only(sku)) >= SKU_MIN_DIGITS}, key=len, reverse=True)
    if not wanted:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, wanted)) + r")(?![\w-])", re.IGNORECASE)


class PiiMasker:
    """Masks and unmasks one conversation's PII; `mapping` (placeholder -> value) is stored on the conversation.

    `phones` carries the business's region and its own public numbers (never masked); `skus` are the catalog's
    SKUs, which stay as written even when their digits would make a valid phone number.
    """

    def __init__(
        self,
        mapping: Mapping[str, str] | None = None,
        *,
        phones: PhoneDetector | None = None,
        skus: Iterable[str] = (),
    ) -> None:
        self._by_placeholder: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        self._next: dict[PiiKind, int] = dict.fromkeys(PiiKind, 1)
        self._phones = phones or PhoneDetector()
        self._skus = _sku_pattern(skus)
        # What decides the spans found in a text (the cache key besides the text).
        self._detection = (self._phones.key, self._skus.pattern if self._skus is not None else None)
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
        return self._replace(text, self._found(text))

    def mask_sections(self, sections: Sequence[str]) -> str:
        """`mask("\\n\\n".join(sections))`, with what each section holds found once per process: the instructions'
        fixed sections (rules, business, stage) repeat on every model request of every conversation.

        The same result: no pattern reaches across a blank line into a section that starts with a letter (a
        number, an address or a phone word's digits cannot start there), so each section is searched alone.
        Otherwise the joined text is searched as a whole."""
        text = SECTION_SEPARATOR.join(sections)
        if not text:
            return text
        if any(not section[:1].isalpha() for section in sections[1:]):
            return self.mask(text)
        found: list[_Found] = []
        offset = 0
        for section in sections:
            found += [(start + offset, end + offset, kind) for start, end, kind in self._found(section)]
            offset += len(section) + len(SECTION_SEPARATOR)
        return self._replace(text, found)

    def _replace(self, text: str, found: Sequence[_Found]) -> str:
        # Placeholders already written in the text (by the customer or a previous pass) are never reused for a
        # different value, so unmask(mask(x)) == x holds for any x.
        reserved = {match.group(0) for match in PLACEHOLDER.finditer(text)} - self._by_placeholder.keys()
        out: list[str] = []
        position = 0
        for start, end, kind in found:
            out.append(text[position:start])
            out.append(self._placeholder_for(text[start:end], kind, reserved))
            position = end
        out.append(text[position:])
        return "".join(out)

    def _found(self, text: str) -> tuple[_Found, ...]:
        """The PII spans of `text`, in order (remembered per text for these detection settings)."""
        if len(text) > MAX_REMEMBERED_TEXT:
            return self._find(text)
        key = (self._detection, text)
        with _found_lock:
            cached = _found_cache.get(key)
            if cached is not None:
                _found_cache.move_to_end(key)
                return cached
        found = self._find(text)
        with _found_lock:
            _found_cache[key] = found
            while len(_found_cache) > REMEMBERED_TEXTS:
                _found_cache.popitem(last=False)
        return found

    def _find(self, text: str) -> tuple[_Found, ...]:
        found: list[_Found] = []
        position = 0
        for match in EMAIL.finditer(text):
            start = match.start()
            # "email=john@acme.com": the key is not part of the address (though RFC 5322 would allow it).
            key = _KEY_PREFIX.match(match.group(0))
            if key is not None:
                start += key.end()
            found += self._numbers(text, position, start)
            found.append((start, match.end(), PiiKind.EMAIL))
            position = match.end()
        found += self._numbers(text, position, len(text))
        return tuple(found)

    def _numbers(self, text: str, begin: int, stop: int) -> list[_Found]:
        """Card and phone numbers in `text[begin:stop]` (searched on its own), in order, as spans of `text`."""
        segment = text[begin:stop]
        keep = [match.span() for match in PLACEHOLDER.finditer(segment)]
        if self._skus is not None:
            keep += [match.span() for match in self._skus.finditer(segment)]
        found: list[_Found] = []
        for match in _CARD.finditer(segment):
            if is_card_number(match.group(0)) and not _overlaps(match.span(), keep):
                found.append((match.start(), match.end(), PiiKind.CARD))
        skip = keep + [(start, end) for start, end, _ in found]
        found += [(phone.start, phone.end, PiiKind.PHONE) for phone in self._phones.find(segment, skip=skip)]
        return [(start + begin, end + begin, kind) for start, end, kind in sorted(found)]

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


def _overlaps(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)
