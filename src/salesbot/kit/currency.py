"""Minor units of currencies: how many decimals an amount has when a payment provider counts it as an integer.

ISO 4217 exponents as Stripe applies them: most currencies have 2 decimals; the zero-decimal ones are counted in
whole units (1500 JPY is `1500`); the three-decimal ones in thousandths (12.340 KWD is `12340`, and Stripe wants
their last digit 0).
"""

from __future__ import annotations

from decimal import Decimal

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class MinorUnitError(ValueError):
    """The amount has more decimals than the currency has (0.5 JPY): no provider can charge it."""


def exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def smallest_unit(currency: str) -> Decimal:
    """1 for JPY, 0.01 for USD, 0.001 for KWD: what amounts in the currency are rounded to."""
    return Decimal(1).scaleb(-exponent(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` in the currency's minor units; refuses an amount that is not a whole number of them."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MinorUnitError(f"{amount} {currency.upper()} is not a whole number of the currency's smallest unit")
    return int(scaled)


def from_minor(value: int, currency: str) -> Decimal:
    return Decimal(value).scaleb(-exponent(currency))
