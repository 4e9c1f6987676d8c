"""The OpenAPI schema and the validators state one text rule: what the schema admits, validation accepts."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from salesbot.api.schemas import NON_BLANK_PATTERN, WHITESPACE_CLASS, ImageUrl, ManagerText
from salesbot.kit.urls import HTTP_URL_PATTERN, MAX_URL_LENGTH

PYTHON_WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def test_the_schema_whitespace_class_is_exactly_what_strip_removes() -> None:
    spelled = re.compile(f"[{WHITESPACE_CLASS}]")
    assert [c for c in PYTHON_WHITESPACE if not spelled.fullmatch(c)] == []
    assert all(not spelled.fullmatch(chr(c)) for c in range(sys.maxunicode + 1) if not chr(c).isspace())


@pytest.mark.parametrize("blank", ["\u0085", " \u0085 ", "\u2028", "\u3000\t", "\u001c"], ids=repr)
def test_a_text_the_schema_refuses_as_blank_is_refused_by_validation_too(blank: str) -> None:
    assert re.fullmatch(NON_BLANK_PATTERN, blank) is None
    with pytest.raises(ValidationError):
        TypeAdapter(ManagerText).validate_python(blank)


@pytest.mark.parametrize("text", ["a", "\u0085ok", " Привет ", "مرحبا\u2028"], ids=repr)
def test_a_text_the_schema_admits_is_accepted(text: str) -> None:
    assert re.fullmatch(NON_BLANK_PATTERN, text) is not None
    assert TypeAdapter(ManagerText).validate_python(text)


@given(st.sampled_from(["http://", "HTTPS://", "hTtps://", "ftp://", ""]).flatmap(lambda p: st.text().map(p.__add__)))
def test_the_image_url_schema_and_validator_accept_the_same_strings(url: str) -> None:
    # Found by schemathesis: the schema said `format: uri` while the validator took any http(s) text.
    by_schema = re.search(HTTP_URL_PATTERN, url) is not None and len(url) <= MAX_URL_LENGTH
    try:
        TypeAdapter(ImageUrl).validate_python(url)
        by_validator = True
    except ValidationError:
        by_validator = False
    assert by_schema == by_validator


@pytest.mark.parametrize("url", ["hTtps://\ud9c3\udd2c\u000e\u00afn", "https://a b", "http://exämple.com/p.jpg"])
def test_an_image_url_outside_printable_ascii_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(ImageUrl).validate_python(url)
