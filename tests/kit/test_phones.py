"""The one phone module: detection in free text (validated by libphonenumber) and normalisation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from salesbot.kit.phones import (
    PhoneDetector,
    digits_only,
    mask_phone,
    normalize_phone,
    phone_from_chat_id,
    supported_region,
)
from salesbot.settings import Settings


@pytest.mark.parametrize(
    ("text", "found", "number"),
    [
        ("https://wa.me/971501234567", "971501234567", "+971501234567"),
        ("тел79011234567", "79011234567", "+79011234567"),
        ("رقم٠٥٠١٢٣٤٥٦٧", "٠٥٠١٢٣٤٥٦٧", "+971501234567"),
        ("call 050-123-4567 now", "050-123-4567", "+971501234567"),
        ("tel:+971-50-123-4567", "+971-50-123-4567", "+971501234567"),
        ("(050) 123 4567", "(050) 123 4567", "+971501234567"),
        ("00 971 50 123 4567", "00 971 50 123 4567", "+971501234567"),
        ("whatsapp:+14155550199", "+14155550199", "+14155550199"),
    ],
)
def test_find_reports_the_span_and_the_e164_number(text: str, found: str, number: str) -> None:
    matches = PhoneDetector("AE").find(text)
    assert [(text[m.start : m.end], m.number) for m in matches] == [(found, number)]


@pytest.mark.parametrize(
    "text",
    [
        # Three separators between digits, the most a run spans: the quick check in front of the detector (a run of
        # seven digits) must not skip it.
        "call 0 - 5 0 ( 1 ) 2 - 3 4 5 6 7",
        "+٩٧١ ٥٠ ١٢٣ ٤٥٦٧",
        "wa.me/971501234567",
    ],
)
def test_numbers_spread_over_separators_are_still_found(text: str) -> None:
    assert PhoneDetector("AE").redact(text).count("[phone]") == 1


def test_text_without_seven_digits_in_a_run_is_left_alone() -> None:
    line = '127.0.0.1:54321 - "POST /webhooks/wazzup/*** HTTP/1.1" 200 in 2 x 4500 AED on 21.11'
    assert PhoneDetector("AE").find(line) == []


def test_skipped_spans_are_never_part_of_a_number() -> None:
    text = "CAT6-2410056 or 0501234567"
    detector = PhoneDetector("AE")
    assert [text[m.start : m.end] for m in detector.find(text)] == ["6-2410056", "0501234567"]
    assert [text[m.start : m.end] for m in detector.find(text, skip=[(0, 12)])] == ["0501234567"]


def test_exempt_numbers_are_matched_in_any_writing() -> None:
    detector = PhoneDetector("AE", exempt=["04 234 5678"])
    assert detector.find("+971 4 234 5678, 97142345678, ٠٤٢٣٤٥٦٧٨") == []
    assert detector.redact("04 234 5678 or 04 234 5679") == "04 234 5678 or [phone]"


def test_normalize_gives_e164() -> None:
    detector = PhoneDetector("AE")
    assert detector.normalize("050 123 4567") == "+971501234567"
    assert detector.normalize("+7 (901) 123-45-67") == "+79011234567"
    assert detector.normalize("٠٥٠١٢٣٤٥٦٧") == "+971501234567"
    assert detector.normalize("4500") is None


def test_digits_in_any_script_are_one_rule() -> None:
    assert digits_only("+٩٧١ ٥٠-۱۲۳") == "97150123"
    assert phone_from_chat_id("whatsapp:+14155238886") == "+14155238886"
    assert phone_from_chat_id("79011234567") == "+79011234567"
    assert phone_from_chat_id("channel-less") == "channel-less"
    assert mask_phone("79011234567") == "+79•••••••67"
    assert normalize_phone("+1 555.010-0") == "+15550100"
    assert normalize_phone("٠٥٠١٢٣٤٥٦٧") == "0501234567"
    for bad in ("", "12", "+1 555 abc", "+" + "1" * 21):
        with pytest.raises(ValueError, match="phone"):
            normalize_phone(bad)


def test_the_region_setting_must_be_a_known_region() -> None:
    assert supported_region(" ae ") == "AE"
    assert Settings(phone_default_region="ru").phone_default_region == "RU"
    assert Settings().phone_default_region == "AE"
    with pytest.raises(ValidationError, match="unknown phone region"):
        Settings(phone_default_region="XX")
    with pytest.raises(ValueError, match="unknown phone region"):
        PhoneDetector("Dubai")
