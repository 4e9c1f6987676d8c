"""Grounding: price, stock and discount figures in a reply must come from tool results."""

from __future__ import annotations

from decimal import Decimal

import pytest

from salesbot.agent.grounding import figures, interpretations, stated_figures, ungrounded

TOOL_RESULT = "- SKU HP-LJM211DW | HP LaserJet M211dw | 1249.00 AED | in stock: 44\nQuote #3\nTotal: 3747.00 AED"
ALLOWED = figures(TOOL_RESULT)
CAP = Decimal(10)


@pytest.mark.parametrize(
    "reply",
    [
        "The HP LaserJet M211dw costs 1249.00 AED and we have 44 in stock.",
        "Цена: 1 249 AED, в наличии: 44 шт.",
        "السعر ١٢٤٩ درهم، متوفر: ٤٤",
        "Total: AED 3,747.00",
        "We can offer up to 10% discount on the quote.",
        "Delivery on 2026-11-21; I'll note 3 units.",
        "Call [PHONE_1] about the 3 printers.",
    ],
)
def test_grounded_replies_pass(reply: str) -> None:
    assert ungrounded(reply, ALLOWED, discount_cap=CAP) == []


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        ("It's only 999 AED today!", "money", "999"),
        ("price: 1200", "money", "1200"),
        ("We have 500 in stock.", "stock", "500"),
        ("в наличии: 7", "stock", "7"),
        ("Sure, 90% off for you!", "discount", "90"),
        ("Скидка 25% ваша", "discount", "25"),
        ("خصم 50%", "discount", "50"),
    ],
)
def test_ungrounded_figures_are_found(reply: str, kind: str, text: str) -> None:
    problems = ungrounded(reply, ALLOWED, discount_cap=CAP)
    assert [(problem.kind, problem.text) for problem in problems] == [(kind, text)]


def test_number_readings() -> None:
    assert interpretations("1,249.00") == {"1249"}
    assert {"1249", "1.249"} <= interpretations("1.249")
    assert {"3249", "249"} <= interpretations("3 249")
    assert interpretations("٣٠") == {"30"}


def test_stated_figures_skip_placeholders() -> None:
    assert stated_figures("Reach me at [PHONE_12] or [EMAIL_3]") == []
