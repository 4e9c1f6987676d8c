"""Values stored in database columns (and exposed by the API)."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    WAZZUP = "wazzup"
    TWILIO = "twilio"
    CONSOLE = "console"
    META = "meta"


class ConversationStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class SalesStage(StrEnum):
    GREETING = "greeting"
    QUALIFYING = "qualifying"
    NEEDS_ANALYSIS = "needs_analysis"
    SOLUTION = "solution"
    COMPANY_DETAILS = "company_details"
    QUOTING = "quoting"
    CLOSING = "closing"


class Owner(StrEnum):
    BOT = "bot"
    HUMAN = "human"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Author(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    MANAGER = "manager"
    SYSTEM = "system"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A send that may have reached the provider, past its duplicate window: never resent, shown to a manager.
    UNCONFIRMED = "unconfirmed"


class UserRole(StrEnum):
    """What a manager account may do: admins also manage accounts and API tokens."""

    ADMIN = "admin"
    MANAGER = "manager"


class PaymentStatus(StrEnum):
    """A payment link's (and its quote's) state: created on acceptance, open once sent, then one outcome."""

    PENDING = "pending"  # the quote was accepted; the link is being created
    OPEN = "open"  # the customer has the link
    PAID = "paid"
    EXPIRED = "expired"  # the Checkout Session expired unpaid
    FAILED = "failed"  # Stripe refused the session, or a delayed payment failed


class CrmSyncState(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"  # the CRM refused it, or retries ran out: shown in the admin


class CrmObject(StrEnum):
    CONTACT = "contact"
    DEAL = "deal"
