"""Finding a product the customer names: "the LUMA then", "ThinkPadE14", "LUМA" typed with a Cyrillic М.

Names are compared in a folded form: look-alike letters of other scripts become Latin (only inside tokens
that already mix scripts or digits, so Russian words stay Russian), everything is lower case, and spaces and
punctuation are dropped, so a missing space or a hyphen does not matter. A product matches by the distinctive
tokens of its name (model names and numbers, not "GB" or "Core") found in the folded message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

# Cyrillic and Greek letters that look like Latin ones.
_CONFUSABLES = str.maketrans(
    "АВЕКМНОРСТУХЅІЈаеорсухѕіјԁһӏԛԝαβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "ABEKMHOPCTYXSIJaeopcyxsijdhlqwabeiknoptuxABEZHIKMNOPTYX",
)
_MIXED = re.compile(r"\w+", re.UNICODE)
_LATIN_OR_DIGIT = re.compile(r"[A-Za-z0-9]")
_NON_LATIN_LETTER = re.compile(r"[^\W\d_A-Za-z]", re.UNICODE)
_GENERIC = frozenset(
    {
        "gb", "tb", "ssd", "hdd", "core", "with", "and", "the", "for", "inch", "pro", "plus", "gen", "user",
        "year", "pack", "black", "white", "series", "business", "wireless", "usb", "ram",
    }
)  # fmt: skip


def unconfuse(text: str) -> str:
    """Look-alike letters as Latin inside tokens that mix scripts or carry digits ("LUМA", "Е14")."""

    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        if _LATIN_OR_DIGIT.search(token) and _NON_LATIN_LETTER.search(token):
            return token.translate(_CONFUSABLES)
        return token

    return _MIXED.sub(fix, unicodedata.normalize("NFKC", text))


def fold(text: str) -> str:
    """Lower case, look-alikes mapped, no spaces or punctuation: the form names are compared in."""
    return "".join(char for char in unconfuse(text).casefold() if char.isalnum())


def name_tokens(name: str) -> list[str]:
    """The distinctive tokens of a product name: model names and numbers."""
    tokens = []
    for token in re.findall(r"[A-Za-z0-9]+", name):
        lowered = token.casefold()
        if lowered in _GENERIC or len(lowered) < 2:
            continue
        if lowered.isdigit() and len(lowered) < 3:
            continue
        tokens.append(lowered)
    return tokens


def name_score(text: str, name: str, sku: str = "", *, lenient: bool = False) -> int:
    """How much of `name` the customer's text names (0: not at all). Short words alone do not count."""
    folded = fold(text)
    if sku and fold(sku) in folded:
        return 100
    tokens = name_tokens(name)
    if not tokens:
        return 0
    found = [token for token in tokens if token in folded]
    # Letters-only tokens shorter than 4 ("air", "hp") are weak alone, unless the choice is among a few products
    # just shown (`lenient`): "the HP one" then means the one HP among them.
    if not found or (not lenient and all(token.isalpha() and len(token) < 4 for token in found)):
        return 0
    return sum(len(token) for token in found)


def best_match(text: str, products: Sequence[dict[str, Any]], *, lenient: bool = False) -> dict[str, Any] | None:
    """The product whose name `text` names best, when one stands out."""
    scored = sorted(
        (
            (name_score(text, str(product["name"]), str(product["sku"]), lenient=lenient), index)
            for index, product in enumerate(products)
        ),
        key=lambda item: (-item[0], item[1]),
    )
    if not scored or scored[0][0] == 0:
        return None
    if len(scored) > 1 and scored[1][0] == scored[0][0]:
        return None
    return products[scored[0][1]]
