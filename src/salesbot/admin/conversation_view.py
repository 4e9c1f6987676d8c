"""The conversations of the admin: list, transcript page and the manager's actions on a chat.

Each action is a POST form with the session's CSRF token that runs one manager action
(`salesbot.conversations.manager_actions`, the same as the REST API's) in its own unit of work, recorded with
the logged-in manager; delivery of a manager's message is scheduled only after the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from redis.exceptions import RedisError
from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from starlette.datastructures import URL, FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from salesbot.accounts import repository as accounts
from salesbot.admin.auth import csrf_token, current_actor
from salesbot.admin.context import SalesbotModelView, _money, _parse_id, _pk, _search_term, _when, checked_form
from salesbot.admin.filters import AssigneeFilter, DistinctValuesFilter, EnumFilter
from salesbot.admin.presenters import bubbles
from salesbot.agent.stages import TRANSITIONS
from salesbot.audit import repository as audit
from salesbot.conversations import manager_actions
from salesbot.customers.service import erase_customer
from salesbot.db import unit_of_work
from salesbot.kit.errors import AppError, NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.kit.phones import mask_phone, phone_from_chat_id
from salesbot.media import repository as media_repository
from salesbot.models import (
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Message,
    MessageMedia,
    Owner,
    SalesStage,
)
from salesbot.outbox.service import schedule_delivery
from salesbot.reporting import repository
from salesbot.reporting.repository import ConversationFilters, apply_conversation_filters

log = get_logger(__name__)

Action = Callable[[AsyncSession, int, FormData], Awaitable[str]]


def _files_by_message(files: list[MessageMedia]) -> dict[int, list[MessageMedia]]:
    grouped: dict[int, list[MessageMedia]] = {}
    for row in files:
        grouped.setdefault(row.message_id, []).append(row)
    return grouped


class ConversationAdmin(SalesbotModelView, model=Conversation):
    name = "Conversation"
    name_plural = "Conversations"
    icon = "fa-solid fa-comments"
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False  # the REST API streams a CSV export with the same filters
    page_size = 25
    column_list: ClassVar[Any] = [
        Conversation.id,
        "customer.name",
        "customer.chat_id",
        Conversation.sales_stage,
        Conversation.owner,
        "assignee.username",
        Conversation.status,
        Conversation.language,
        Conversation.last_message_at,
        Conversation.message_count,
        Conversation.llm_cost_total,
    ]
    column_labels: ClassVar[Any] = {
        Conversation.id: "ID",
        "customer.name": "Customer",
        "customer.chat_id": "Phone",
        Conversation.sales_stage: "Stage",
        Conversation.owner: "Owner",
        "assignee.username": "Assignee",
        Conversation.status: "Status",
        Conversation.language: "Language",
        Conversation.last_message_at: "Last message",
        Conversation.message_count: "Messages",
        Conversation.llm_cost_total: "LLM cost",
    }
    column_formatters: ClassVar[Any] = {
        "customer.name": lambda m, a: m.customer.name or "—",
        "customer.chat_id": lambda m, a: mask_phone(m.customer.chat_id),
        Conversation.sales_stage: lambda m, a: m.sales_stage.value.replace("_", " "),
        Conversation.owner: lambda m, a: m.owner.value,
        "assignee.username": lambda m, a: m.assignee.username if m.assignee is not None else "—",
        Conversation.status: lambda m, a: m.status.value,
        Conversation.last_message_at: lambda m, a: _when(m.last_message_at),
        Conversation.llm_cost_total: lambda m, a: f"${_money(m.llm_cost_total, 4)}",
    }
    # The search box looks at the customer's name and phone digits (see `search_query`).
    column_searchable_list: ClassVar[Any] = ["customer.name", "customer.chat_id"]
    column_sortable_list: ClassVar[Any] = [
        Conversation.id,
        Conversation.last_message_at,
        Conversation.message_count,
        Conversation.llm_cost_total,
    ]
    column_filters: ClassVar[Any] = [
        EnumFilter(Conversation.sales_stage, SalesStage, title="Stage", parameter_name="stage"),
        EnumFilter(Conversation.owner, Owner, title="Owner", parameter_name="owner"),
        AssigneeFilter(),
        EnumFilter(Conversation.status, ConversationStatus, title="Status", parameter_name="status"),
        DistinctValuesFilter(Conversation.language, title="Language", parameter_name="language", max_length=8),
    ]
    details_template = "salesbot/conversation_details.html"

    def search_placeholder(self) -> str:
        return "customer name or phone"

    def list_query(self, request: Request) -> Select[Any]:
        return (
            select(Conversation)
            .join(Customer, Customer.id == Conversation.customer_id)
            .options(selectinload(Conversation.customer), selectinload(Conversation.assignee))
        )

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        return apply_conversation_filters(stmt, ConversationFilters(search=_search_term(term)))

    def sort_query(self, stmt: Select[Any], request: Request) -> Select[Any]:
        if request.query_params.get("sortBy"):
            return super().sort_query(stmt, request)
        # Newest activity first; chats without messages after the others.
        return stmt.order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())

    def details_query(self, request: Request) -> Select[Any]:
        return self._stmt_by_identifier(request.path_params["pk"]).options(
            selectinload(Conversation.customer), selectinload(Conversation.assignee)
        )

    async def details_context(self, request: Request) -> dict[str, Any]:
        pk = _pk(request)
        if pk is None:
            return {}
        async with self.site.resources.sessionmaker() as session:
            conversation = await session.get(Conversation, pk)
            messages = await repository.list_messages(session, pk)
            quotes = await repository.list_quotes(session, pk)
            files = await media_repository.media_of(session, [m.id for m in messages])
            events = await audit.conversation_events(session, pk)
            users = await accounts.all_users(session, active_only=True)
        transcript = bubbles(messages)
        taken_by = next((e for e in reversed(events) if e.action in ("take_over", "reply")), None)
        return {
            "bubbles": transcript,
            "turns": [bubble.turn for bubble in transcript if bubble.turn is not None],
            "quotes": quotes,
            "files": _files_by_message(files),
            "failed_count": sum(1 for b in transcript if b.status is DeliveryStatus.FAILED),
            "events": events,
            "taken_by": taken_by.actor if taken_by is not None else None,
            "users": users,
            "next_stages": sorted(TRANSITIONS[conversation.sales_stage]) if conversation is not None else [],
            "me": current_actor(request).name,
            "csrf_token": csrf_token(request),
            "takeover_hours": self.site.salesbot_settings.conversation.human_takeover_hours,
            "max_text": manager_actions.MAX_MANAGER_TEXT,
            "phone": phone_from_chat_id,
            "when": _when,
            "money": _money,
            "now": datetime.now(UTC),
        }

    def action_url(self, request: Request, action: str, pk: int) -> URL:
        return request.url_for(f"admin:view-{self.identity}-{action}", pk=str(pk))

    @expose("/{pk}/media/{media_id}", methods=["GET"])
    async def media(self, request: Request) -> Response:
        """A file the customer sent (voice note, photo, document), as downloaded from the provider."""
        pk, media_id = _pk(request), _parse_id(request.path_params.get("media_id"))
        if pk is None or media_id is None:
            raise HTTPException(status_code=404)
        async with self.site.resources.sessionmaker() as session:
            found = await media_repository.get_with_data(session, media_id)
            message = await session.get(Message, found.message_id) if found is not None else None
        if found is None or found.data is None or message is None or message.conversation_id != pk:
            raise HTTPException(status_code=404)
        return Response(
            found.data,
            media_type=found.content_type or "application/octet-stream",
            # Never rendered as a page of ours: a customer's file could be HTML or SVG with scripts.
            headers={
                "Content-Disposition": f'inline; filename="media-{found.id}"',
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
                "Cache-Control": "private, no-store",
            },
        )

    async def _act(self, request: Request, action: Action) -> Response:
        """Run one manager action for the chat `pk` and come back to its page with the outcome."""
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        back = RedirectResponse(request.url_for("admin:details", identity="conversation", pk=str(pk)), status_code=303)
        try:
            async with unit_of_work(self.site.resources.sessionmaker) as session:
                done = await action(session, pk, form)
        except NotFoundError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc
        except AppError as exc:
            Flash.error(request, exc.message)
            return back
        Flash.success(request, done)
        return back

    @expose("/{pk}/take-over", methods=["POST"])
    async def take_over(self, request: Request) -> Response:
        settings = self.site.salesbot_settings

        async def run(session: AsyncSession, pk: int, form: FormData) -> str:
            await manager_actions.take_over(session, settings, pk, current_actor(request))
            return f"You own this chat for {settings.conversation.human_takeover_hours:g} h; the bot is silent."

        return await self._act(request, run)

    @expose("/{pk}/hand-back", methods=["POST"])
    async def hand_back(self, request: Request) -> Response:
        async def run(session: AsyncSession, pk: int, form: FormData) -> str:
            await manager_actions.hand_back(session, pk, current_actor(request))
            return "The bot answers again from the customer's next message."

        return await self._act(request, run)

    @expose("/{pk}/close", methods=["POST"])
    async def close(self, request: Request) -> Response:
        async def run(session: AsyncSession, pk: int, form: FormData) -> str:
            await manager_actions.close(session, pk, current_actor(request))
            return "Conversation closed."

        return await self._act(request, run)

    @expose("/{pk}/send", methods=["POST"])
    async def send(self, request: Request) -> Response:
        settings = self.site.salesbot_settings
        sent: list[int] = []

        async def run(session: AsyncSession, pk: int, form: FormData) -> str:
            rows = await manager_actions.reply(session, settings, pk, form.get("text"), current_actor(request))
            sent.append(pk)
            return "Message queued for delivery." if len(rows) == 1 else f"Message queued in {len(rows)} parts."

        response = await self._act(request, run)
        for pk in sent:
            try:
                await schedule_delivery(self.site.resources.redis, pk)
            except RedisError:
                # The row is committed as pending; the outbox's recovery sweep sends it once Redis is back.
                log.exception("admin.delivery_not_scheduled", conversation=pk)
                Flash.success(request, "Delivery starts as soon as the queue is reachable.")
        return response

    @expose("/{pk}/stage", methods=["POST"])
    async def change_stage(self, request: Request) -> Response:
        settings = self.site.salesbot_settings

        async def run(session: AsyncSession, pk: int, form: FormData) -> str:
            raw = form.get("stage")
            if raw not in {stage.value for stage in SalesStage}:
                raise AppError("choose a stage")
            stage = SalesStage(str(raw))
            changes = manager_actions.Changes(stage=stage)
            await manager_actions.update(session, settings, pk, changes, current_actor(request))
            return f"Stage set to {stage.value.replace('_', ' ')}."

        return await self._act(request, run)

    @expose("/{pk}/assign", methods=["POST"])
    async def assign(self, request: Request) -> Response:
        settings = self.site.salesbot_settings

        async def run(session: AsyncSession, pk: int, form: FormData) -> str:
            raw = form.get("assignee")
            if not isinstance(raw, str):
                raise AppError("choose a manager")
            changes = manager_actions.Changes(assignee=raw or None)
            await manager_actions.update(session, settings, pk, changes, current_actor(request))
            return f"Assigned to {raw}." if raw else "Nobody is assigned now."

        return await self._act(request, run)

    @expose("/{pk}/erase-customer", methods=["POST"])
    async def erase_customer(self, request: Request) -> Response:
        """Erase the customer of conversation `pk` with all their data (the same service as the API's DELETE)."""
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        actor = current_actor(request)
        async with unit_of_work(self.site.resources.sessionmaker) as session:
            customer_id = await session.scalar(select(Conversation.customer_id).where(Conversation.id == pk))
            if customer_id is None:
                raise HTTPException(status_code=404)
            erased = await erase_customer(session, customer_id)
            await audit.record(session, actor, "erase_customer", details={"customer": customer_id})
        log.info("admin.customer_erased", customer=customer_id, user=actor.name)
        Flash.success(
            request,
            f"Customer erased: {erased.conversations} conversations, {erased.messages} messages, "
            f"{erased.quotes} quotes and {erased.memories} remembered facts deleted.",
        )
        return RedirectResponse(request.url_for("admin:list", identity="conversation"), status_code=303)
