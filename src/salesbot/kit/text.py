"""Checks for free text typed by people (managers, API clients) before it reaches the database or a customer."""

from __future__ import annotations

import re

# PostgreSQL text cannot hold NUL, no chat or catalog text needs the other C0 controls (tab and newlines can), and
# a lone UTF-16 surrogate (JSON allows "\ud800") cannot be encoded as UTF-8 at all.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def printable(value: str) -> str:
    """`value` unchanged, or `ValueError` if it holds control characters (usable as a pydantic validator)."""
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value
