"""PII masking: examples for each format, and hypothesis properties (no leak, round trip, idempotence)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesbot.agent.pii import PLACEHOLDER, PiiKind, PiiMasker, classify_number

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


@pytest.mark.parametrize(
    "phone",
    [
        "+7 901 234-56-78",
        "+79012345678",
        "8 (901) 234 56 78",
        "+1 (555) 123-4567",
        "(555) 123-4567",
        "555.123.4567",
        "+971 50 123 4567",
        "00971501234567",
        "+44 20 7946 0958",
        "+٩٧١ ٥٠ ١٢٣ ٤٥٦٧",
        "٠٥٠١٢٣٤٥٦٧",
        "+۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹",
    ],
)
def test_phone_formats_are_masked(phone: str) -> None:
    masker = PiiMasker()
    masked = masker.mask(f"call me on {phone} please")
    assert masked == "call me on [PHONE_1] please"
    assert masker.mapping == {"[PHONE_1]": phone}


@pytest.mark.parametrize("email", ["john.doe@acme.com", "ivan+sales@romashka.example", "a_b@sub.domain.co.uk"])
def test_emails_are_masked(email: str) -> None:
    masker = PiiMasker()
    assert masker.mask(f"write to {email}.") == "write to [EMAIL_1]."


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "5500-0000-0000-0004", "4111111111111111", "378282246310005"])
def test_card_numbers_are_masked(card: str) -> None:
    masker = PiiMasker()
    assert masker.mask(f"my card {card}") == "my card [CARD_1]"


@pytest.mark.parametrize(
    "text",
    [
        "SKU HP-LJM211DW costs 649.00 AED",
        "SKU 10023456 is in stock",
        "артикул: 7712345, 12 шт",
        "AB-1234567 and CAT6-2410056",
        "price 1 249 000 ₽ or $1,249,000.00 or 3 299 AED",
        "1500000 руб",
        "1234567.89 total",
        "we need 250 units by 2026-11-21 10:30",
        "delivery on 21.11.2026, or 11/21/2026",
        "the years 2019-2026",
        "quote #12345678",
        "https://shop.example/item/12345678",
    ],
)
def test_skus_prices_quantities_and_dates_are_not_masked(text: str) -> None:
    masker = PiiMasker()
    assert masker.mask(text) == text
    assert masker.mapping == {}


def test_a_key_before_an_email_is_not_part_of_it() -> None:
    masker = PiiMasker()
    assert masker.mask("email=john@acme.com") == "email=[EMAIL_1]"
    assert masker.mapping == {"[EMAIL_1]": "john@acme.com"}


def test_placeholders_are_stable_per_conversation_and_across_turns() -> None:
    masker = PiiMasker()
    first = masker.mask("+7 901 234-56-78, a@b.io")
    # The next turn restores the masker from the stored map (conversation.pii_map).
    later = PiiMasker(masker.mapping)
    second = later.mask("again: a@b.io and +7 901 234-56-78, new: c@d.io")
    assert first == "[PHONE_1], [EMAIL_1]"
    assert second == "again: [EMAIL_1] and [PHONE_1], new: [EMAIL_2]"
    assert later.unmask("Mail [EMAIL_2] or call [PHONE_1]") == "Mail c@d.io or call +7 901 234-56-78"


def test_unknown_placeholders_stay_and_are_never_reused() -> None:
    masker = PiiMasker()
    masked = masker.mask("I typed [PHONE_1] literally; my real one is +44 20 7946 0958")
    assert masked == "I typed [PHONE_1] literally; my real one is [PHONE_2]"
    assert masker.unmask(masked) == "I typed [PHONE_1] literally; my real one is +44 20 7946 0958"
    assert masker.resolve("[PHONE_3]") == "[PHONE_3]"


def test_classify_number() -> None:
    assert classify_number("+1 555 123 4567") is PiiKind.PHONE
    assert classify_number("4111 1111 1111 1111") is PiiKind.CARD
    assert classify_number("123456") is None
    assert classify_number("1 249 000", after=" AED") is None
    assert classify_number("12345678901234567890") is None


# --- properties ----------------------------------------------------------------------------------------------

_WORD_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCXYZабвгдеёжзийклмнопрстуфхцчшщъыьэюяمرحباشكرالطابعة")
)
words = st.text(_WORD_ALPHABET, min_size=1, max_size=8)
context = st.lists(words, max_size=6).map(" ".join)
separators = st.sampled_from([" ", "-", ".", ""])


@st.composite
def phones(draw: st.DrawFn) -> str:
    """International and local phone numbers in the formats people type, in Latin or Arabic-Indic digits."""
    country = str(draw(st.integers(1, 999)))
    national_length = draw(st.integers(max(6, 8 - len(country)), 15 - len(country)))
    national = str(draw(st.integers(1, 9))) + "".join(str(draw(st.integers(0, 9))) for _ in range(national_length - 1))
    groups: list[str] = []
    rest = national
    while rest:
        size = draw(st.integers(2, 4))
        groups.append(rest[:size])
        rest = rest[size:]
    separator = draw(separators)
    if draw(st.booleans()) and len(groups) > 1:
        groups[0] = f"({groups[0]})"
        body = groups[0] + " " + separator.join(groups[1:])
    else:
        body = separator.join(groups)
    style = draw(st.sampled_from(["plus", "plus_space", "double_zero", "local"]))
    if style == "plus":
        number = f"+{country}{body}"
    elif style == "plus_space":
        number = f"+{country} {body}"
    elif style == "double_zero":
        number = f"00{country}{body}"
    else:
        number = f"{draw(st.sampled_from(['0', '8']))}{body}" if len(national) >= 9 else f"+{country} {body}"
    digits = draw(st.sampled_from(["latin", "arabic", "persian"]))
    if digits == "arabic":
        return number.translate(ARABIC_INDIC)
    if digits == "persian":
        return number.translate(PERSIAN)
    return number


def _digits_outside_placeholders(text: str) -> str:
    return "".join(char for char in PLACEHOLDER.sub("", text) if char.isdecimal())


_PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY_SETTINGS
@given(before=context, phone=phones(), after=context, joint=st.sampled_from([" ", ": ", ", ", " (", "\n"]))
def test_no_generated_phone_survives_masking(before: str, phone: str, after: str, joint: str) -> None:
    text = f"{before}{joint}{phone} {after}"
    masked = PiiMasker().mask(text)
    assert phone not in masked
    assert _digits_outside_placeholders(masked) == ""


@_PROPERTY_SETTINGS
@given(before=context, email=st.emails(), after=context)
def test_no_generated_email_survives_masking(before: str, email: str, after: str) -> None:
    masked = PiiMasker().mask(f"{before} {email} {after}")
    assert email not in masked
    assert "@" not in PLACEHOLDER.sub("", masked)


@_PROPERTY_SETTINGS
@given(parts=st.lists(st.one_of(context, phones(), st.emails(), st.text(max_size=30)), max_size=6))
def test_unmask_of_mask_is_identity(parts: list[str]) -> None:
    text = " ".join(parts)
    masker = PiiMasker()
    assert masker.unmask(masker.mask(text)) == text


@_PROPERTY_SETTINGS
@given(parts=st.lists(st.one_of(context, phones(), st.emails(), st.text(max_size=30)), max_size=6))
def test_masking_masked_text_changes_nothing(parts: list[str]) -> None:
    masker = PiiMasker()
    once = masker.mask(" ".join(parts))
    mapping = masker.mapping
    assert masker.mask(once) == once
    assert masker.mapping == mapping


@_PROPERTY_SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_text_round_trips(text: str) -> None:
    masker = PiiMasker()
    masked = masker.mask(text)
    assert masker.unmask(masked) == text
    assert masker.mask(masked) == masked


def test_same_value_gets_the_same_placeholder_within_a_text() -> None:
    masker = PiiMasker()
    masked = masker.mask("a@b.io, +1 555 123 4567, a@b.io, +1 555 123 4567")
    assert masked == "[EMAIL_1], [PHONE_1], [EMAIL_1], [PHONE_1]"
    assert re.findall(r"\[\w+_\d+\]", masked) == ["[EMAIL_1]", "[PHONE_1]", "[EMAIL_1]", "[PHONE_1]"]
