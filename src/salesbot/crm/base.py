"""What salesbot asks of a CRM, and the errors it may answer with (one file per CRM)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from salesbot.models import SalesStage


@dataclass(frozen=True)
class CrmContact:
    name: str | None
    company: str | None
    email: str | None
    # The customer's WhatsApp number (E.164): real contact data for the CRM, never logged.
    phone: str | None

    @property
    def first_and_last_name(self) -> tuple[str, str]:
        """CRMs want a last name: "Dana Q. Buyer" -> ("Dana Q.", "Buyer"); one word is the last name."""
        parts = (self.name or "").split()
        if not parts:
            return "", self.company or "WhatsApp customer"
        return " ".join(parts[:-1]), parts[-1]


@dataclass(frozen=True)
class CrmDeal:
    name: str
    stage: SalesStage
    paid: bool
    amount: Decimal | None
    currency: str | None
    # "CH-100 Ergonomic chair x 10", one per line item (the quote's, else the customer's selection).
    products: tuple[str, ...]

    @property
    def description(self) -> str:
        lines = [f"WhatsApp sales conversation; stage: {self.stage.value}{' (paid)' if self.paid else ''}"]
        if self.amount is not None and self.currency:
            lines.append(f"Quote total: {self.amount} {self.currency}")
        if self.products:
            lines.append("Products: " + "; ".join(self.products))
        return "\n".join(lines)


class CrmError(Exception):
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CrmUnavailableError(CrmError):
    """Network failure, timeout, 429 or 5xx: the same upsert may be sent again later."""

    retryable = True


class CrmRejectedError(CrmError):
    """The CRM refused the data or the credentials: a manager has to look (shown in the admin)."""


class CrmProvider(Protocol):
    name: str

    async def upsert_contact(self, contact: CrmContact, external_id: str | None) -> str:
        """Update the contact `external_id` (or create one, or find it by e-mail); returns the CRM's id."""
        ...

    async def upsert_deal(self, deal: CrmDeal, external_id: str | None, contact_id: str) -> str:
        """Update the deal `external_id` or create one associated with the contact; returns the CRM's id."""
        ...
