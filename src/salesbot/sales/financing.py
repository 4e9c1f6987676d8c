"""Financing: monthly instalments under one of the playbook's plans (standard amortisation).

The caller chooses a term; the plan for that term gives the rate and the smallest amount it finances. There is
no way to pass a rate: a term the business does not offer, or an amount below the plan's minimum, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from salesbot.agent.playbook import FinancingPlan, Playbook
from salesbot.kit.errors import AppError
from salesbot.sales.quotes import CENT, money, percent


class FinancingInputError(AppError):
    """Impossible numbers (a non-positive price, a down payment above the price): the caller can correct them."""

    status_code = 422


class FinancingRefused(AppError):
    """The business offers no plan for this: an unknown term, an amount below the plan's minimum, another currency."""

    status_code = 409


@dataclass(frozen=True)
class FinancingOffer:
    price: Decimal
    down_payment: Decimal
    principal: Decimal
    months: int
    annual_rate: Decimal
    monthly_payment: Decimal
    total_paid: Decimal
    interest: Decimal
    currency: str

    def text(self) -> str:
        """The offer as the customer reads it, every amount in the price's currency."""
        currency = self.currency
        return (
            f"Financing of {money(self.price, currency)} with {money(self.down_payment, currency)} down over "
            f"{self.months} months at {percent(self.annual_rate)} a year: {self.months} monthly payments of "
            f"{money(self.monthly_payment, currency)}; financed amount {money(self.principal, currency)}; total paid "
            f"{money(self.total_paid, currency)} (interest {money(self.interest, currency)})."
        )


def monthly_payment(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """Standard amortisation, rounded to the cent."""
    monthly_rate = annual_rate / Decimal(1200)
    if monthly_rate == 0:
        payment = principal / months
    else:
        payment = principal * monthly_rate / (1 - (1 + monthly_rate) ** -months)
    return payment.quantize(CENT, rounding=ROUND_HALF_UP)


def plans_text(playbook: Playbook) -> str:
    return playbook.financing.describe(playbook.currency)


def choose_plan(playbook: Playbook, months: int) -> FinancingPlan:
    plan = playbook.financing.plan(months)
    if plan is None:
        offered = ", ".join(str(plan.months) for plan in playbook.financing.plans)
        raise FinancingRefused(
            f"there is no {months}-month plan; the terms offered are {offered or 'none'} months"
            if offered
            else "the business offers no financing plans"
        )
    return plan


def finance(
    playbook: Playbook, *, price: Decimal, currency: str, months: int, down_payment: Decimal = Decimal(0)
) -> FinancingOffer:
    """The instalments for `price` (in `currency`) over `months`, under the playbook's plan for that term."""
    amount = price.quantize(CENT, rounding=ROUND_HALF_UP)
    down = down_payment.quantize(CENT, rounding=ROUND_HALF_UP)
    if amount <= 0:
        raise FinancingInputError("the price must be positive")
    if down < 0 or down >= amount:
        raise FinancingInputError("the down payment must be at least 0 and less than the price")
    plan = choose_plan(playbook, months)
    if currency.upper() != playbook.currency:
        raise FinancingRefused(
            f"financing plans are offered in {playbook.currency} only; this price is in {currency.upper()}"
        )
    principal = amount - down
    if principal < plan.min_amount:
        raise FinancingRefused(
            f"the {months}-month plan finances from {money(plan.min_amount, playbook.currency)}; "
            f"{money(principal, currency)} is below that ({plans_text(playbook)})"
        )
    payment = monthly_payment(principal, plan.annual_rate, months)
    total_paid = payment * months + down
    return FinancingOffer(
        price=amount,
        down_payment=down,
        principal=principal,
        months=months,
        annual_rate=plan.annual_rate,
        monthly_payment=payment,
        total_paid=total_paid,
        interest=total_paid - amount,
        currency=currency.upper(),
    )
