"""PII masking: examples for each format, and hypothesis properties (no leak, commerce untouched, round trip)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from salesbot.agent.instructions import business_text, rules_text, stage_text
from salesbot.agent.pii import PLACEHOLDER, PiiMasker, is_card_number
from salesbot.agent.playbook import Playbook
from salesbot.kit.phones import PhoneDetector
from salesbot.models import SalesStage

# A delivery date in sales text (relative to now: the text is what is under test, not the date).
SOON = datetime.now(UTC) + timedelta(days=3)

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
        "+971 50 123 4567",
        "00971501234567",
        "971501234567",
        "050 123 4567",
        "050-123-4567",
        "050.123.4567",
        "(050) 123 4567",
        "+971 (50) 123-4567",
        "0501234567",
        "04 234 5678",
        "+44 20 7946 0958",
        "79011234567",
        "+٩٧١ ٥٠ ١٢٣ ٤٥٦٧",
        "٠٥٠١٢٣٤٥٦٧",
        "+۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹",
        "۰۵۰ ۱۲۳ ۴۵۶۷",
    ],
)
def test_phone_formats_are_masked(phone: str) -> None:
    masker = PiiMasker()
    masked = masker.mask(f"call me on {phone} please")
    assert masked == "call me on [PHONE_1] please"
    assert masker.mapping == {"[PHONE_1]": phone}


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        # The shapes the old masker skipped: digits right after a letter or a "/".
        ("https://wa.me/971501234567", "971501234567"),
        ("тел79011234567", "79011234567"),
        ("https://api.whatsapp.com/send?phone=971501234567&text=hi", "971501234567"),
        ("tel:+971501234567", "+971501234567"),
        ("tel:+7-901-123-45-67", "+7-901-123-45-67"),
        ("тел. 8 901 123-45-67", "8 901 123-45-67"),
        ("Тел: 8(901)1234567", "8(901)1234567"),
        ("رقم0501234567", "0501234567"),
        ("رقمي ٠٥٠١٢٣٤٥٦٧ شكرا", "٠٥٠١٢٣٤٥٦٧"),
        ("هاتف:۰۵۰۱۲۳۴۵۶۷", "۰۵۰۱۲۳۴۵۶۷"),
        ("call0501234567", "0501234567"),
        ("0501234567pls call", "0501234567"),
        ("whatsapp971501234567", "971501234567"),
        ("mynumber+971501234567", "+971501234567"),
        ("ref/0501234567/", "0501234567"),
        ("I need 3 0501234567", "0501234567"),
    ],
)
def test_phones_glued_to_words_links_and_labels_are_masked(text: str, phone: str) -> None:
    masker = PiiMasker()
    masked = masker.mask(text)
    assert masked == text.replace(phone, "[PHONE_1]")
    assert masker.resolve("[PHONE_1]") == phone


def test_two_numbers_in_one_run_are_both_masked() -> None:
    assert PiiMasker().mask("+971 50 123 4567 +971 50 765 4321") == "[PHONE_1] [PHONE_2]"
    assert PiiMasker().mask("0501234567 0507654321") == "[PHONE_1] [PHONE_2]"


@pytest.mark.parametrize("email", ["john.doe@acme.com", "ivan+sales@romashka.example", "a_b@sub.domain.co.uk"])
def test_emails_are_masked(email: str) -> None:
    masker = PiiMasker()
    assert masker.mask(f"write to {email}.") == "write to [EMAIL_1]."


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "5500-0000-0000-0004", "4111111111111111", "378282246310005", "٤١١١ ١١١١ ١١١١ ١١١١"],
)
def test_card_numbers_are_masked(card: str) -> None:
    masker = PiiMasker()
    assert masker.mask(f"my card {card}") == "my card [CARD_1]"


@pytest.mark.parametrize(
    "text",
    [
        "2 x 4500 AED",
        "SKU LP-1001",
        "order 2024-118",
        "Order #2024-118 of 21.11.2026 is ready",
        "INV-2024-000118",
        "invoice 2024/0117",
        "SKU HP-LJM211DW costs 649.00 AED",
        "SKU 10023456 is in stock",
        "артикул: 7712345, 12 шт",
        "price 1 249 000 ₽ or $1,249,000.00 or 3 299 AED",
        "AED 22345678 total, or 22345678 AED, or 42000000.00 درهم",
        "1500000 руб",
        "1234567.89 total",
        f"we need 250 units by {SOON:%Y-%m-%d %H:%M}",
        "delivery on 21.11.2026, or 11/21/2026",
        "the years 2019-2026, since 2009, in 2024 2025 2026",
        "quote #12345678",
        "https://shop.example/item/12345678",
        "compare the Dell Latitude 5440 7440 3520",
        "Lenovo ThinkPad E14 Gen 5, 16 GB, 512 GB SSD, 14 inch",
        "5% VAT, 0% for 3 and 6 months, 36 months at 9%",
        "EAN 4006381333931",
        "free delivery above AED 1,000, otherwise AED 35",
    ],
)
def test_prices_quantities_skus_orders_dates_and_years_are_not_masked(text: str) -> None:
    masker = PiiMasker()
    assert masker.mask(text) == text
    assert masker.mapping == {}


def test_catalog_skus_are_exempt_and_only_they() -> None:
    text = "AB-0501234567 and CAT6-2410056"
    # Unknown codes whose digits make valid UAE numbers are masked: privacy wins over a code we do not know.
    assert PiiMasker().mask(text) == "AB-[PHONE_1] and CAT[PHONE_2]"
    masker = PiiMasker(skus=["ab-0501234567", "CAT6-2410056", "LP-1001"])
    assert masker.mask(text) == text
    assert masker.mask("CAT6-2410056, call me 0501234567") == "CAT6-2410056, call me [PHONE_1]"


def test_the_business_numbers_are_exempt_however_written() -> None:
    phones = PhoneDetector("AE", exempt=["+971 4 234 5678"])
    masker = PiiMasker(phones=phones)
    text = "Our office: 04 234 5678, +971-4-234-5678, wa.me/97142345678"
    assert masker.mask(text) == text
    assert masker.mask("Call me on 050 123 4567 or 04 234 5678") == "Call me on [PHONE_1] or 04 234 5678"


def test_the_region_decides_how_national_numbers_are_read() -> None:
    assert PiiMasker().mask("my number 5512 3456") == "my number 5512 3456"
    qatar = PiiMasker(phones=PhoneDetector("QA"))
    assert qatar.mask("my number 5512 3456") == "my number [PHONE_1]"
    us = PiiMasker(phones=PhoneDetector("US"))
    assert us.mask("text 201.555.0123") == "text [PHONE_1]"


def test_a_key_before_an_email_is_not_part_of_it() -> None:
    masker = PiiMasker()
    assert masker.mask("email=john@acme.com") == "email=[EMAIL_1]"
    assert masker.mapping == {"[EMAIL_1]": "john@acme.com"}


def test_placeholders_are_stable_per_conversation_and_across_turns() -> None:
    masker = PiiMasker()
    first = masker.mask("+7 901 234-56-78, a@b.io")
    # The next turn restores the masker from the stored map (conversation.pii_map).
    later = PiiMasker(masker.mapping)
    second = later.mask("again: a@b.io and +7 901 234-56-78, new: c@d.io, wa.me/971501234567")
    assert first == "[PHONE_1], [EMAIL_1]"
    assert second == "again: [EMAIL_1] and [PHONE_1], new: [EMAIL_2], wa.me/[PHONE_2]"
    assert later.unmask("Mail [EMAIL_2] or call [PHONE_1]") == "Mail c@d.io or call +7 901 234-56-78"
    assert later.resolve(" [PHONE_2] ") == "971501234567"


def test_unknown_placeholders_stay_and_are_never_reused() -> None:
    masker = PiiMasker()
    masked = masker.mask("I typed [PHONE_1] literally; my real one is +44 20 7946 0958")
    assert masked == "I typed [PHONE_1] literally; my real one is [PHONE_2]"
    assert masker.unmask(masked) == "I typed [PHONE_1] literally; my real one is +44 20 7946 0958"
    assert masker.resolve("[PHONE_3]") == "[PHONE_3]"


def test_card_numbers() -> None:
    assert is_card_number("4111 1111 1111 1111")
    assert is_card_number("378282246310005")
    assert not is_card_number("378282246310006")
    assert not is_card_number("123456")


# --- properties ----------------------------------------------------------------------------------------------

# Words next to a number that make it an amount ("79011234567 usd") are left out of the random context.
_CURRENCY_WORD = re.compile(
    r"(?i:usd|eur|gbp|rub|aed|sar|kzt|uah|qar|kwd|omr|bhd|egp|inr|руб\w*|р|тыс|млн|dollars?|euros?|dirhams?"
    r"|riyals?|درهم|دراهم|ريال|دولار)"
)
_WORD_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCXYZабвгдеёжзийклмнопрстуфхцчшщъыьэюяمرحباشكرالطابعة")
)
words = st.text(_WORD_ALPHABET, min_size=1, max_size=8).filter(lambda word: not _CURRENCY_WORD.fullmatch(word))
context = st.lists(words, max_size=6).map(" ".join)

REGIONS = ["AE", "SA", "QA", "KW", "OM", "RU", "KZ", "US", "GB", "IN", "EG", "DE", "FR", "TR", "IR", "PK"]
_TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]


@st.composite
def valid_numbers(draw: st.DrawFn, regions: list[str] = REGIONS) -> phonenumbers.PhoneNumber:
    """A number libphonenumber validates: a region's example with its subscriber digits redrawn."""
    region = draw(st.sampled_from(regions))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(_TYPES)))
    national = phonenumbers.national_significant_number(example)
    keep = len(national) - draw(st.integers(1, min(6, len(national) - 2)))
    tail = draw(st.text("0123456789", min_size=len(national) - keep, max_size=len(national) - keep))
    number = phonenumbers.parse(f"+{example.country_code}{national[:keep]}{tail}")
    assume(phonenumbers.is_valid_number(number))
    return number


@st.composite
def written_phones(draw: st.DrawFn, region: str = "AE") -> str:
    """A valid number as customers write it: international, bare, in a link, national (of `region`)..."""
    number = draw(valid_numbers([region] if draw(st.booleans()) else REGIONS))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    shapes = [
        e164,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        e164[1:],
        "00" + e164[1:],
        "https://wa.me/" + e164[1:],
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.RFC3966),
    ]
    if phonenumbers.region_code_for_number(number) == region:
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        shapes += [national, phonenumbers.normalize_digits_only(national)]
    written = draw(st.sampled_from(shapes))
    separator = draw(st.sampled_from([" ", "-", ".", "", "\u00a0"]))
    if " " in written and "(" not in written:
        written = written.replace(" ", separator)
    script = draw(st.sampled_from(["latin", "arabic", "persian"]))
    return written.translate(ARABIC_INDIC if script == "arabic" else PERSIAN if script == "persian" else {})


def _digits_outside_placeholders(text: str) -> str:
    return "".join(char for char in PLACEHOLDER.sub("", text) if char.isdecimal())


_PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_BEFORE = st.sampled_from(["", " ", ": ", ", ", " (", "\n", "/", "тел", " رقم", "tel:", "#"])
_AFTER = st.sampled_from(["", " ", ".", ", ", ")", "\n"])


@_PROPERTY_SETTINGS
@given(before=context, joint=_BEFORE, phone=written_phones(), end=_AFTER, after=context)
def test_no_valid_phone_survives_masking(before: str, joint: str, phone: str, end: str, after: str) -> None:
    text = f"{before}{joint}{phone}{end}{after}"
    masker = PiiMasker()
    masked = masker.mask(text)
    assert phone not in masked
    assert _digits_outside_placeholders(masked) == ""
    assert masker.unmask(masked) == text


@_PROPERTY_SETTINGS
@given(
    region=st.sampled_from(["AE", "RU", "US", "QA", "GB", "IN"]),
    data=st.data(),
    before=context,
    joint=_BEFORE,
    after=context,
)
def test_national_numbers_of_the_business_region_are_masked(
    region: str, data: st.DataObject, before: str, joint: str, after: str
) -> None:
    number = data.draw(valid_numbers([region]))
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    phone = data.draw(st.sampled_from([national, phonenumbers.normalize_digits_only(national)]))
    masked = PiiMasker(phones=PhoneDetector(region)).mask(f"{before}{joint}{phone} {after}")
    assert phone not in masked
    assert _digits_outside_placeholders(masked) == ""


_CURRENCIES = st.sampled_from(["AED", "aed", "USD", "$", "€", "₽", "руб", "درهم", "dirhams", "SAR"])


@st.composite
def commerce_text(draw: st.DrawFn) -> str:
    """Sentences of normal sales talk: prices, quantities, SKUs, order numbers, dates, times and years."""
    year = draw(st.integers(1990, 2035))
    amount = draw(st.integers(1, 99_999_999))
    grouped = f"{amount:,}".replace(",", draw(st.sampled_from([" ", ",", "\u00a0"])))
    currency = draw(_CURRENCIES)
    parts = [
        f"{draw(st.integers(1, 999))} x {draw(st.integers(1, 99_999))} {currency}",
        f"{grouped} {currency}",
        f"{currency} {amount}",
        f"{amount}.{draw(st.integers(0, 99)):02d} {currency}",
        f"{amount}.{draw(st.integers(0, 99)):02d}",
        f"SKU {draw(st.sampled_from(['LP', 'HP', 'DEL', 'CAT6']))}-{draw(st.integers(1, 99_999))}",
        f"order {year}-{draw(st.integers(1, 9999))}",
        f"order #{draw(st.integers(1, 999_999))}",
        f"{draw(st.integers(1, 28)):02d}.{draw(st.integers(1, 12)):02d}.{year}",
        f"{year}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d} {draw(st.integers(0, 23))}:30",
        f"since {year}",
        f"{year}-{year + draw(st.integers(0, 9))}",
        f"{draw(st.integers(1, 10_000))} units",
        f"{draw(st.integers(0, 100))}%",
    ]
    chosen = draw(st.lists(st.sampled_from(parts), min_size=1, max_size=4))
    return draw(st.sampled_from([", ", "; ", " and ", "\n"])).join(chosen)


@_PROPERTY_SETTINGS
@given(text=commerce_text())
def test_normal_commerce_text_is_never_masked(text: str) -> None:
    masker = PiiMasker()
    assert masker.mask(text) == text


@_PROPERTY_SETTINGS
@given(before=context, email=st.emails(), after=context)
def test_no_generated_email_survives_masking(before: str, email: str, after: str) -> None:
    masked = PiiMasker().mask(f"{before} {email} {after}")
    assert email not in masked
    assert "@" not in PLACEHOLDER.sub("", masked)


@_PROPERTY_SETTINGS
@given(parts=st.lists(st.one_of(context, written_phones(), st.emails(), st.text(max_size=30)), max_size=6))
def test_unmask_of_mask_is_identity(parts: list[str]) -> None:
    text = " ".join(parts)
    masker = PiiMasker()
    assert masker.unmask(masker.mask(text)) == text


@_PROPERTY_SETTINGS
@given(parts=st.lists(st.one_of(context, written_phones(), st.emails(), st.text(max_size=30)), max_size=6))
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


# --- what is found is remembered per text (and per detection settings), placeholders stay per conversation -----

_SECTION_TAIL = st.sampled_from(["", " tel", " AED", " call", ": +", " 12", " 2026-11", ".", " x@y.io"])
section = st.builds(
    lambda head, parts, tail: head + " ".join(parts) + tail,
    st.sampled_from(["", "Note ", "What ", "5 ", "+", "(", "[PHONE_1] ", "тел ", "رقم "]),
    st.lists(st.one_of(context, written_phones(), st.emails(), st.text(max_size=30)), max_size=4),
    _SECTION_TAIL,
)


@_PROPERTY_SETTINGS
@given(sections=st.lists(section, min_size=1, max_size=5))
def test_masking_by_sections_is_masking_the_joined_text(sections: list[str]) -> None:
    known = {"[PHONE_1]": "+971500000001"}
    by_sections, whole = PiiMasker(known), PiiMasker(known)

    assert by_sections.mask_sections(sections) == whole.mask("\n\n".join(sections))
    assert by_sections.mapping == whole.mapping


def test_the_instructions_are_masked_as_one_text_would_be(playbook: Playbook) -> None:
    for stage in SalesStage:
        sections = [
            rules_text(playbook, "ru"),
            business_text(playbook),
            stage_text(playbook, stage),
            "What we know about the customer:\n- Name: Ann\n- E-mail: ann@acme.io\n- Phone: 050 123 4567",
            f"Today is {datetime.now(UTC):%A, %Y-%m-%d}.",
            "Summary of the earlier conversation:\nCustomer: call me on +7 901 234-56-78 or tel 0501234567",
        ]
        by_sections, whole = PiiMasker(), PiiMasker()
        assert by_sections.mask_sections(sections) == whole.mask("\n\n".join(sections))
        assert by_sections.mapping == whole.mapping
        # The rules mention [PHONE_1] and [EMAIL_1] as examples: the customer's details never take them.
        assert sorted(whole.mapping) == ["[EMAIL_2]", "[PHONE_2]", "[PHONE_3]", "[PHONE_4]"]


def test_what_one_detector_found_is_not_reused_by_another() -> None:
    text = "call us on 050 123 4567 or write to 0501234568"
    exempting = PiiMasker(phones=PhoneDetector("AE", exempt=["+971 50 123 4567"]))
    assert exempting.mask(text) == "call us on 050 123 4567 or write to [PHONE_1]"

    assert PiiMasker(phones=PhoneDetector("AE")).mask(text) == "call us on [PHONE_1] or write to [PHONE_2]"
    assert PiiMasker(phones=PhoneDetector("US")).mask(text) == text
    assert PiiMasker(skus=["0501234568"]).mask(text) == "call us on [PHONE_1] or write to 0501234568"


def test_a_remembered_text_gets_each_conversation_s_own_placeholders() -> None:
    text = "my numbers: +971 50 123 4567 and a@b.io"
    first = PiiMasker()
    assert first.mask(text) == "my numbers: [PHONE_1] and [EMAIL_1]"

    other = PiiMasker({"[PHONE_1]": "+79012345678", "[EMAIL_1]": "c@d.io"})
    assert other.mask(text) == "my numbers: [PHONE_2] and [EMAIL_2]"
    assert other.unmask(other.mask(text)) == text
