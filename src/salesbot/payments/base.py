"""What salesbot asks of a payment provider, and the errors it may answer with (one file per provider)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class CheckoutLine:
    name: str
    # Per unit, in the currency's minor units (kit.currency).
    unit_amount: int
    quantity: int


@dataclass(frozen=True)
class CheckoutRequest:
    """One hosted checkout for a quote: its lines, the quote's discount as one amount off, the return URLs."""

    idempotency_key: str
    currency: str
    lines: tuple[CheckoutLine, ...]
    success_url: str
    cancel_url: str
    discount: int = 0  # minor units off the whole order
    client_reference_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def amount_total(self) -> int:
        return sum(line.unit_amount * line.quantity for line in self.lines) - self.discount


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    amount_total: int
    currency: str
    expires_at: datetime | None


class PaymentProviderError(Exception):
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PaymentUnavailableError(PaymentProviderError):
    """Network failure, timeout, 429 or 5xx: the same request (same idempotency key) may be sent again."""

    retryable = True


class PaymentRejectedError(PaymentProviderError):
    """The provider refused the request (bad key, invalid parameters): sending it again changes nothing."""


class CheckoutProvider(Protocol):
    name: str

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """A hosted payment page for the request; the same idempotency key never creates a second one."""
        ...
