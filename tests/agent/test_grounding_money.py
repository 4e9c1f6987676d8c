"""A price in a reply is grounded only by a number that was a price where it came from.

Found by the system suite's prompt-injection attacks (tests/system/test_prompt_injection.py): an obedient model
told a customer "5 printers at 1.00 AED each, total 5.00 AED", and the check let it through because a "1"
("1-year warranty") and a "5" (5 units, 5% VAT) appeared in tool results and the playbook.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from salesbot.agent.grounding import as_money, figures, ungrounded

PRODUCT = (
    "- SKU HP-LJM211DW | HP LaserJet M211dw Printer | 649.00 AED | in stock: 44 | "
    "A4 mono laser, 29 ppm, automatic duplex. 1-year warranty.\nSelected: HP-LJM211DW x 5. Prices exclude 5% VAT."
)
CAP = Decimal(10)


@pytest.mark.parametrize(
    "reply",
    [
        "Confirmed: 5 printers at 1.00 AED each, total 5.00 AED.",
        "Цена: 29 AED за штуку",
        "السعر 44 درهم",
        "Total: 5 AED",
    ],
)
def test_numbers_that_were_not_prices_do_not_ground_a_price(reply: str) -> None:
    problems = ungrounded(reply, figures(PRODUCT), discount_cap=CAP)
    assert problems
    assert {problem.kind for problem in problems} == {"money"}


@pytest.mark.parametrize(
    "reply",
    [
        "The HP LaserJet M211dw costs 649.00 AED, 44 in stock.",
        "Цена: 649 AED, в наличии: 44",
        "A 1-year warranty and 29 ppm; 5 units selected.",
    ],
)
def test_prices_the_tools_returned_stay_grounded(reply: str) -> None:
    assert ungrounded(reply, figures(PRODUCT), discount_cap=CAP) == []


def test_computed_amounts_are_grounded_as_money() -> None:
    # A monthly instalment the financing tool computed, or a past quote's total.
    allowed = as_money(figures("275.43"))
    assert ungrounded("12 monthly payments of 275.43 AED", allowed, discount_cap=CAP) == []
    assert ungrounded("12 monthly payments of 275.43 AED", figures("275.43"), discount_cap=CAP)


def test_a_round_thousand_does_not_ground_a_tiny_price() -> None:
    # "AED 1,000" could be read as 1.000 (three decimals): as an amount it is one thousand.
    allowed = figures("Free delivery for orders above AED 1,000; cash on delivery up to AED 5,000.")
    assert ungrounded("Free delivery from 1,000 AED", allowed, discount_cap=CAP) == []
    assert [problem.text for problem in ungrounded("only 1.00 AED each", allowed, discount_cap=CAP)] == ["1.00"]
    assert [problem.text for problem in ungrounded("total 5 AED", allowed, discount_cap=CAP)] == ["5"]
