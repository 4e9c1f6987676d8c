"""Admin views of payment links (Stripe Checkout Sessions and what became of them) and of the CRM sync.

Both are read-only lists: the worker owns these rows. `?conversation=<id>` narrows a list to one conversation
(the conversation page links there), so a manager sees per conversation whether the customer paid or why the
link was refused or expired, and whether its contact and deal reached the CRM or what the CRM answered.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Select, select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from salesbot.admin.context import ReadOnlyModelView, _when
from salesbot.admin.filters import EnumFilter
from salesbot.kit.currency import from_minor
from salesbot.models import Conversation, CrmLink, CrmObject, CrmSyncState, PaymentLink, PaymentStatus


def _conversation_id(request: Request) -> int | None:
    """`?conversation=<id>`, validated (anything else is a 400, never a database error)."""
    raw = request.query_params.get("conversation")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
        raise HTTPException(status_code=400, detail="conversation must be a conversation id")
    return int(raw)


def _short(text: str | None, limit: int = 80) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PaymentLinkAdmin(ReadOnlyModelView, model=PaymentLink):
    name = "Payment"
    name_plural = "Payments"
    identity = "payment-link"
    icon = "fa-solid fa-credit-card"
    column_list: ClassVar[Any] = [
        PaymentLink.id,
        PaymentLink.conversation_id,
        PaymentLink.quote_id,
        PaymentLink.status,
        PaymentLink.amount_minor,
        PaymentLink.currency,
        PaymentLink.attempts,
        PaymentLink.error,
        PaymentLink.created_at,
        PaymentLink.paid_at,
    ]
    column_labels: ClassVar[Any] = {
        PaymentLink.conversation_id: "Conversation",
        PaymentLink.quote_id: "Quote",
        PaymentLink.amount_minor: "Amount",
        PaymentLink.error: "Refusal / last error",
    }
    column_formatters: ClassVar[Any] = {
        PaymentLink.status: lambda m, a: m.status.value,
        PaymentLink.amount_minor: lambda m, a: f"{from_minor(m.amount_minor, m.currency):,}",
        PaymentLink.error: lambda m, a: _short(m.error),
        PaymentLink.created_at: lambda m, a: _when(m.created_at),
        PaymentLink.paid_at: lambda m, a: _when(m.paid_at),
    }
    column_sortable_list: ClassVar[Any] = [PaymentLink.id, PaymentLink.created_at, PaymentLink.paid_at]
    column_default_sort: ClassVar[Any] = [("id", True)]
    column_filters: ClassVar[Any] = [
        EnumFilter(PaymentLink.status, PaymentStatus, title="Status", parameter_name="status"),
    ]

    def list_query(self, request: Request) -> Select[Any]:
        conversation_id = _conversation_id(request)
        stmt = select(PaymentLink)
        return stmt if conversation_id is None else stmt.where(PaymentLink.conversation_id == conversation_id)


class CrmLinkAdmin(ReadOnlyModelView, model=CrmLink):
    name = "CRM sync"
    name_plural = "CRM sync"
    identity = "crm-link"
    icon = "fa-solid fa-arrows-rotate"
    column_list: ClassVar[Any] = [
        CrmLink.id,
        CrmLink.provider,
        CrmLink.object_type,
        CrmLink.customer_id,
        CrmLink.conversation_id,
        CrmLink.external_id,
        CrmLink.state,
        CrmLink.attempts,
        CrmLink.last_error,
        CrmLink.next_attempt_at,
        CrmLink.synced_at,
    ]
    column_labels: ClassVar[Any] = {
        CrmLink.object_type: "Record",
        CrmLink.customer_id: "Customer",
        CrmLink.conversation_id: "Conversation",
        CrmLink.external_id: "CRM id",
        CrmLink.next_attempt_at: "Next attempt",
    }
    column_formatters: ClassVar[Any] = {
        CrmLink.object_type: lambda m, a: m.object_type.value,
        CrmLink.state: lambda m, a: m.state.value,
        # Contacts belong to the customer, not to one conversation (stored as 0).
        CrmLink.conversation_id: lambda m, a: m.conversation_id or "",
        CrmLink.last_error: lambda m, a: _short(m.last_error),
        CrmLink.next_attempt_at: lambda m, a: _when(m.next_attempt_at),
        CrmLink.synced_at: lambda m, a: _when(m.synced_at),
    }
    column_sortable_list: ClassVar[Any] = [CrmLink.id, CrmLink.synced_at]
    column_default_sort: ClassVar[Any] = [("id", True)]
    column_filters: ClassVar[Any] = [
        EnumFilter(CrmLink.state, CrmSyncState, title="State", parameter_name="state"),
        EnumFilter(CrmLink.object_type, CrmObject, title="Record", parameter_name="record"),
    ]

    def list_query(self, request: Request) -> Select[Any]:
        """`?conversation=` shows the conversation's deal and its customer's contact."""
        conversation_id = _conversation_id(request)
        stmt = select(CrmLink)
        if conversation_id is None:
            return stmt
        customer = select(Conversation.customer_id).where(Conversation.id == conversation_id).scalar_subquery()
        contact = (CrmLink.conversation_id == 0) & (CrmLink.customer_id == customer)
        return stmt.where((CrmLink.conversation_id == conversation_id) | contact)


COMMERCE_VIEWS = (PaymentLinkAdmin, CrmLinkAdmin)
