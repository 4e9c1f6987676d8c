"""Admin views of team alerts (with their delivery per channel) and follow-ups, and one page per conversation
listing both. Registered by the admin site (`ALERT_VIEWS`); read-only: alerts and follow-ups are written by jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqladmin import BaseView, expose
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from salesbot.admin.context import ReadOnlyModelView, SalesbotModelView, SiteView
from salesbot.admin.filters import EnumFilter
from salesbot.models import Alert, AlertDelivery, AlertKind, FollowUp, FollowUpStatus, Message


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def delivery_state(delivery: AlertDelivery) -> str:
    """`telegram: sent`, `email: pending (2 attempts; next 10:04:00 UTC; smtp 451: ...)`, `webhook: failed (1 attempt;
    webhook 401)`."""
    state = f"{delivery.channel.value}: {delivery.status.value}"
    details = []
    if delivery.attempts > 1 or (delivery.attempts and delivery.status.value != "sent"):
        details.append(f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}")
    if delivery.status.value == "pending" and delivery.next_attempt_at is not None:
        details.append(f"next {delivery.next_attempt_at.astimezone(UTC).strftime('%H:%M:%S UTC')}")
    if delivery.error:
        details.append(delivery.error[:120])
    return state + (f" ({'; '.join(details)})" if details else "")


def deliveries_text(alert: Alert) -> str:
    return " · ".join(delivery_state(row) for row in alert.deliveries) or "no channel configured"


DELIVERY = "delivery"


class AlertAdmin(ReadOnlyModelView, model=Alert):
    name = "Alert"
    name_plural = "Alerts"
    icon = "fa-solid fa-bell"
    column_list: ClassVar[Any] = [
        Alert.id,
        Alert.kind,
        Alert.conversation_id,
        Alert.excerpt,
        DELIVERY,
        Alert.created_at,
    ]
    column_details_list: ClassVar[Any] = [*column_list, Alert.event_key]
    column_labels: ClassVar[Any] = {Alert.conversation_id: "Conversation", DELIVERY: "Delivery per channel"}
    column_formatters: ClassVar[Any] = {
        Alert.kind: lambda m, a: m.kind.value.replace("_", " "),
        Alert.created_at: lambda m, a: _when(m.created_at),
    }
    column_formatters_detail: ClassVar[Any] = column_formatters
    column_sortable_list: ClassVar[Any] = [Alert.id, Alert.created_at]
    column_default_sort: ClassVar[Any] = [("id", True)]
    column_filters: ClassVar[Any] = [EnumFilter(Alert.kind, AlertKind, title="Kind", parameter_name="kind")]

    async def get_prop_value(self, obj: Any, prop: str) -> Any:
        # A column of the view, not of the table: each channel's state in one cell (not links to a delivery view).
        if prop == DELIVERY:
            return deliveries_text(obj)
        return await super().get_prop_value(obj, prop)

    def list_query(self, request: Request) -> Select[Any]:
        return super().list_query(request).options(selectinload(Alert.deliveries))

    def details_query(self, request: Request) -> Select[Any]:
        return super().details_query(request).options(selectinload(Alert.deliveries))


class FollowUpAdmin(ReadOnlyModelView, model=FollowUp):
    name = "Follow-up"
    name_plural = "Follow-ups"
    icon = "fa-solid fa-clock-rotate-left"
    column_list: ClassVar[Any] = [
        FollowUp.id,
        FollowUp.conversation_id,
        FollowUp.rule,
        FollowUp.status,
        FollowUp.due_at,
        FollowUp.sent_at,
        FollowUp.reason,
        FollowUp.message_id,
    ]
    column_labels: ClassVar[Any] = {
        FollowUp.conversation_id: "Conversation",
        FollowUp.due_at: "Due",
        FollowUp.sent_at: "Sent",
        FollowUp.message_id: "Message",
    }
    column_formatters: ClassVar[Any] = {
        FollowUp.status: lambda m, a: m.status.value,
        FollowUp.due_at: lambda m, a: _when(m.due_at),
        FollowUp.sent_at: lambda m, a: _when(m.sent_at),
    }
    column_sortable_list: ClassVar[Any] = [FollowUp.id, FollowUp.due_at, FollowUp.sent_at]
    column_default_sort: ClassVar[Any] = [("due_at", True)]
    column_filters: ClassVar[Any] = [
        EnumFilter(FollowUp.status, FollowUpStatus, title="Status", parameter_name="status")
    ]


class ConversationActivityView(SiteView, BaseView):
    """One conversation's alerts (delivery per channel) and follow-ups (scheduled, sent, cancelled, skipped)."""

    name = "Conversation alerts and follow-ups"

    def is_visible(self, request: Request) -> bool:
        # Reached from a conversation's page, not from the menu.
        return False

    @expose("/conversation-activity/{pk}", methods=["GET"], identity="conversation-activity")
    async def activity(self, request: Request) -> Response:
        raw = request.path_params.get("pk", "")
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
            raise HTTPException(status_code=404)
        conversation_id = int(raw)
        async with self.site.resources.sessionmaker() as session:
            alerts = list(
                await session.scalars(
                    select(Alert)
                    .options(selectinload(Alert.deliveries))
                    .where(Alert.conversation_id == conversation_id)
                    .order_by(Alert.id.desc())
                )
            )
            follow_ups = list(
                await session.execute(
                    select(FollowUp, Message.delivery_status)
                    .outerjoin(Message, Message.id == FollowUp.message_id)
                    .where(FollowUp.conversation_id == conversation_id)
                    .order_by(FollowUp.due_at.desc())
                )
            )
        context = {
            "conversation_id": conversation_id,
            "alerts": [
                {
                    "kind": alert.kind.value.replace("_", " "),
                    "created": _when(alert.created_at),
                    "excerpt": alert.excerpt or "",
                    "deliveries": [delivery_state(row) for row in alert.deliveries],
                }
                for alert in alerts
            ],
            "follow_ups": [
                {
                    "rule": row.rule,
                    "status": row.status.value,
                    "due": _when(row.due_at),
                    "sent": _when(row.sent_at),
                    "reason": row.reason or "",
                    "delivery": status.value if status is not None else "",
                }
                for row, status in follow_ups
            ],
        }
        return await self.templates.TemplateResponse(request, "salesbot/conversation_activity.html", context)


ALERT_VIEWS: tuple[type[SalesbotModelView] | type[BaseView], ...] = (
    AlertAdmin,
    FollowUpAdmin,
    ConversationActivityView,
)
