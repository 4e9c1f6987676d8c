"""A price in a reply is grounded only by a figure that was a price where it came from.

Found by the system suite's prompt-injection attacks (tests/system/test_prompt_injection.py): an obedient model
told a customer "5 printers at 1.00 AED each, total 5.00 AED", and the check let it through because a "1"
("1-year warranty") and a "5" (5 units, 5% VAT) appeared in tool results and the playbook.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from salesbot.agent.grounding import Ledger, catalog_evidence, evidence, ungrounded
from salesbot.agent.playbook import load_playbook

PLAYBOOK = load_playbook()
PRODUCT = Ledger.of(
    catalog_evidence("HP-LJM211DW", "HP LaserJet M211dw Printer", Decimal("649.00"), "AED", 44), PLAYBOOK
)


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
    problems = ungrounded(reply, PRODUCT)
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
    assert ungrounded(reply, PRODUCT) == []


def test_computed_amounts_are_grounded_as_money() -> None:
    # A monthly instalment the financing tool computed.
    instalment = Ledger.of([evidence("financing", Decimal("275.43"), currency="AED", skus=["X"])], PLAYBOOK)
    assert ungrounded("12 monthly payments of 275.43 AED", instalment) == []
    assert ungrounded("12 monthly payments of 275.43 AED", PRODUCT)


def test_a_round_thousand_does_not_ground_a_tiny_price() -> None:
    # "AED 1,000" could be read as 1.000 (three decimals): as an amount it is one thousand.
    policy = Ledger.of([], PLAYBOOK)
    assert ungrounded("Free delivery from 1,000 AED", policy) == []
    assert [problem.text for problem in ungrounded("only 1.00 AED each", policy)] == ["1.00"]
    assert [problem.text for problem in ungrounded("total 5 AED", policy)] == ["5"]
