"""Financing under the playbook's plans: the term chooses the plan, the plan gives the rate and the minimum."""

from __future__ import annotations

from decimal import Decimal

import pytest

from salesbot.agent.playbook import load_playbook
from salesbot.sales.financing import FinancingInputError, FinancingRefused, finance, monthly_payment

PLAYBOOK = load_playbook()


def test_the_plan_for_the_term_sets_the_rate() -> None:
    free = finance(PLAYBOOK, price=Decimal("1349"), currency="AED", months=6, down_payment=Decimal("349"))
    assert (free.annual_rate, free.principal, free.monthly_payment, free.interest) == (
        Decimal(0),
        Decimal("1000.00"),
        Decimal("166.67"),
        Decimal("0.02"),  # six rounded instalments
    )
    long = finance(PLAYBOOK, price=Decimal("16999"), currency="AED", months=36)
    assert long.annual_rate == 9
    assert long.monthly_payment == monthly_payment(Decimal("16999.00"), Decimal(9), 36) == Decimal("540.56")
    assert "36 monthly payments of 540.56 AED" in long.text()


@pytest.mark.parametrize(
    ("price", "months", "down", "error", "message"),
    [
        (
            Decimal("16999"),
            48,
            Decimal(0),
            FinancingRefused,
            "no 48-month plan; the terms offered are 3, 6, 12, 24, 36",
        ),
        (Decimal("5000"), 36, Decimal(0), FinancingRefused, "the 36-month plan finances from 10000.00 AED"),
        (Decimal("1349"), 6, Decimal("400"), FinancingRefused, "finances from 1000.00 AED; 949.00 AED is below"),
        (Decimal(0), 6, Decimal(0), FinancingInputError, "price must be positive"),
        (Decimal("1349"), 6, Decimal("1349"), FinancingInputError, "down payment"),
    ],
)
def test_terms_outside_the_plans_are_refused(
    price: Decimal, months: int, down: Decimal, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        finance(PLAYBOOK, price=price, currency="AED", months=months, down_payment=down)


def test_a_price_in_another_currency_is_not_financed_as_the_playbooks() -> None:
    with pytest.raises(FinancingRefused, match="offered in AED only; this price is in USD"):
        finance(PLAYBOOK, price=Decimal("16999"), currency="usd", months=12)
