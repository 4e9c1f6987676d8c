"""The admin site: SQLAdmin mounted at /admin, bound to the app's engine when the lifespan opens resources.

Manager actions (take over, hand back, close, send) are POST forms with a CSRF token; each runs the
conversation service in its own unit of work and schedules delivery only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from redis.exceptions import RedisError
from sqladmin import Admin, BaseView, ModelView
from sqladmin.authentication import login_required
from sqladmin.flash import Flash
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from salesbot.admin import charts
from salesbot.admin.auth import CSRF_FIELD, AdminAuth, csrf_valid
from salesbot.admin.commerce_views import COMMERCE_VIEWS
from salesbot.admin.views import MODEL_VIEWS, DashboardView, _pk, index_redirect
from salesbot.conversations import service as conversations
from salesbot.customers.service import erase_customer
from salesbot.db import unit_of_work
from salesbot.documents.router import pdf_response
from salesbot.documents.service import quote_pdf
from salesbot.kit.errors import AppError, NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.kit.text import has_control_characters
from salesbot.knowledge.editing import chunk_text, embedding_update, product_text
from salesbot.knowledge.embeddings import get_embedder
from salesbot.models import Conversation, KnowledgeChunk, Product
from salesbot.outbox.service import schedule_delivery
from salesbot.reporting.stats import compute_stats
from salesbot.resources import Resources
from salesbot.settings import Settings

log = get_logger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
BASE_URL = "/admin"
DASHBOARD_DAYS = (7, 14, 30, 90)
MAX_MANAGER_MESSAGE = 4096


class SalesbotAdmin(Admin):
    """SQLAdmin with salesbot's login, views, dashboard and manager actions."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.salesbot_settings = settings
        self._resources: Resources | None = None
        auth = AdminAuth(settings, lambda: self.resources, base_path=BASE_URL)
        # Unbound until the lifespan opens the engine (`bind`); SQLAdmin's own queries use this factory.
        super().__init__(
            app,
            session_maker=async_sessionmaker(class_=AsyncSession, expire_on_commit=False),
            base_url=BASE_URL,
            title="salesbot",
            authentication_backend=auth,
            templates_dir=str(TEMPLATES_DIR),
        )
        auth.templates = self.templates
        self.templates.env.globals["csrf_field"] = CSRF_FIELD
        self.add_view(_bound(DashboardView))
        for view in MODEL_VIEWS:
            self.add_view(_bound(view))
        for view in COMMERCE_VIEWS:
            self.add_view(_bound(view))

    def bind(self, resources: Resources) -> None:
        self.session_maker.configure(bind=resources.engine)
        self._resources = resources

    @property
    def resources(self) -> Resources:
        if self._resources is None:
            raise RuntimeError("the admin is used before the application started")
        return self._resources

    @login_required
    async def index(self, request: Request) -> Response:
        return index_redirect(request)

    # --- dashboard ----------------------------------------------------------------------------------------------

    async def render_dashboard(self, request: Request) -> Response:
        raw_days = request.query_params.get("days", "14")
        days = int(raw_days) if raw_days.isdigit() and int(raw_days) in DASHBOARD_DAYS else 14
        async with self.resources.sessionmaker() as session:
            stats = await compute_stats(session, days=days, now=datetime.now(UTC))
        labels = [f"{entry.day:%d %b}" for entry in stats.per_day]
        context = {
            "title": "Dashboard",
            "stats": stats,
            "days": days,
            "day_options": DASHBOARD_DAYS,
            "funnel_chart": charts.horizontal_bars(
                [(entry.stage.value.replace("_", " "), entry.conversations) for entry in stats.funnel]
            ),
            "conversations_chart": charts.columns(
                labels,
                [charts.Series("new conversations", [d.new_conversations for d in stats.per_day])],
                counts=True,
            ),
            "messages_chart": charts.columns(
                labels,
                [
                    charts.Series("inbound", [d.inbound_messages for d in stats.per_day], charts.PALETTE[0]),
                    charts.Series("outbound", [d.outbound_messages for d in stats.per_day], charts.PALETTE[1]),
                ],
                counts=True,
            ),
            "latency_chart": charts.columns(
                labels,
                [
                    charts.Series("p50", [_seconds(d.reply_latency_p50_ms) for d in stats.per_day], charts.PALETTE[0]),
                    charts.Series("p95", [_seconds(d.reply_latency_p95_ms) for d in stats.per_day], charts.PALETTE[2]),
                ],
                kind="line",
                fmt=lambda value: f"{value:.1f} s",
            ),
            "handoffs_chart": charts.columns(
                labels,
                [
                    charts.Series("handoffs", [d.handoffs for d in stats.per_day], charts.PALETTE[4]),
                    charts.Series("failed deliveries", [d.failed_deliveries for d in stats.per_day], charts.PALETTE[3]),
                ],
                counts=True,
            ),
            "cost_chart": charts.columns(
                labels,
                [charts.Series("LLM cost", [float(d.llm_cost) for d in stats.per_day], charts.PALETTE[5])],
                fmt=lambda value: f"${value:,.4f}" if value < 1 else f"${value:,.2f}",
            ),
            "seconds": _seconds,
        }
        return await self.templates.TemplateResponse(request, "salesbot/dashboard.html", context)

    # --- conversation actions -------------------------------------------------------------------------------------

    async def conversation_action(self, request: Request, action: str) -> Response:
        form = await request.form()
        if not csrf_valid(request, form.get(CSRF_FIELD)):
            return PlainTextResponse("invalid or missing CSRF token; reload the page", status_code=403)
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        back = RedirectResponse(request.url_for("admin:details", identity="conversation", pk=str(pk)), status_code=303)
        settings = self.salesbot_settings
        text = form.get("text")
        if action == "send" and (
            not isinstance(text, str)
            or not text.strip()
            or len(text) > MAX_MANAGER_MESSAGE
            or has_control_characters(text)
        ):
            Flash.error(request, f"Write a message of 1 to {MAX_MANAGER_MESSAGE} characters.")
            return back
        try:
            async with unit_of_work(self.resources.sessionmaker) as session:
                if action == "take_over":
                    await conversations.take_over(session, pk, hours=settings.conversation.human_takeover_hours)
                    done = f"You own this chat for {settings.conversation.human_takeover_hours:g} h; the bot is silent."
                elif action == "hand_back":
                    await conversations.hand_back(session, pk)
                    done = "The bot answers again from the customer's next message."
                elif action == "close":
                    await conversations.close_conversation(session, pk)
                    done = "Conversation closed."
                elif action == "send":
                    assert isinstance(text, str)
                    rows = await conversations.send_manager_message(session, pk, text, settings=settings)
                    done = "Message queued for delivery." if len(rows) == 1 else f"Message queued in {len(rows)} parts."
                else:
                    raise HTTPException(status_code=404)
        except NotFoundError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc
        except AppError as exc:
            Flash.error(request, exc.message)
            return back
        log.info("admin.conversation_action", action=action, conversation=pk, user=request.session.get("user"))
        if action == "send":
            try:
                await schedule_delivery(self.resources.redis, pk)
            except RedisError:
                # The row is committed as pending; the outbox's recovery sweep sends it once Redis is back.
                log.exception("admin.delivery_not_scheduled", conversation=pk)
                done += " Delivery starts as soon as the queue is reachable."
        Flash.success(request, done)
        return back

    async def erase_customer_action(self, request: Request) -> Response:
        """Erase the customer of conversation `pk` with all their data (the same service as the API's DELETE)."""
        form = await request.form()
        if not csrf_valid(request, form.get(CSRF_FIELD)):
            return PlainTextResponse("invalid or missing CSRF token; reload the page", status_code=403)
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        async with unit_of_work(self.resources.sessionmaker) as session:
            customer_id = await session.scalar(select(Conversation.customer_id).where(Conversation.id == pk))
            if customer_id is None:
                raise HTTPException(status_code=404)
            erased = await erase_customer(session, customer_id)
        log.info("admin.customer_erased", customer=customer_id, user=request.session.get("user"))
        Flash.success(
            request,
            f"Customer erased: {erased.conversations} conversations, {erased.messages} messages, "
            f"{erased.quotes} quotes and {erased.memories} remembered facts deleted.",
        )
        return RedirectResponse(request.url_for("admin:list", identity="conversation"), status_code=303)

    # --- documents ---------------------------------------------------------------------------------------------------

    async def quote_pdf(self, request: Request) -> Response:
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        try:
            async with self.resources.sessionmaker() as session:
                document, content = await quote_pdf(session, pk, self.salesbot_settings)
        except NotFoundError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc
        return pdf_response(document.filename, content)

    # --- products and knowledge -------------------------------------------------------------------------------------

    async def embed_product_form(self, data: dict[str, Any], model: Any) -> None:
        """Before SQLAdmin saves a product: embed its text if that changed (the vector lands in the same commit)."""
        await self._embed_into(data, model, product_text(_merged(data, model, PRODUCT_TEXT_FIELDS)))

    async def embed_chunk_form(self, data: dict[str, Any], model: Any) -> None:
        await self._embed_into(data, model, chunk_text(_merged(data, model, ("title", "content"))))

    async def _embed_into(self, data: dict[str, Any], model: Any, document: str) -> None:
        update = await embedding_update(
            get_embedder(self.salesbot_settings),
            document,
            current_hash=getattr(model, "content_hash", None),
            current_model=getattr(model, "embedding_model", None),
        )
        if update is not None:
            data.update(update.as_values())

    async def set_active(
        self,
        request: Request,
        model: type[Product] | type[KnowledgeChunk],
        *,
        identity: str,
        label: Callable[[Any], str],
    ) -> Response:
        """Activate or deactivate a product or a knowledge passage (a POST form with the CSRF token)."""
        form = await request.form()
        if not csrf_valid(request, form.get(CSRF_FIELD)):
            return PlainTextResponse("invalid or missing CSRF token; reload the page", status_code=403)
        pk = _pk(request)
        active = form.get("active")
        if pk is None or active not in ("true", "false"):
            raise HTTPException(status_code=404 if pk is None else 400)
        async with unit_of_work(self.resources.sessionmaker) as session:
            row: Product | KnowledgeChunk | None = await session.scalar(
                select(model).where(model.id == pk).with_for_update()
            )
            if row is None:
                raise HTTPException(status_code=404)
            row.active = active == "true"
        log.info("admin.active_changed", identity=identity, pk=pk, active=row.active)
        Flash.success(request, f"{label(row)} is now {'active' if row.active else 'deactivated'}.")
        return RedirectResponse(request.url_for("admin:details", identity=identity, pk=str(pk)), status_code=303)


PRODUCT_TEXT_FIELDS = ("sku", "name", "category", "description", "attributes")


def _merged(data: dict[str, Any], model: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The row's values after the form is applied: submitted fields over the stored ones."""
    return {name: data[name] if name in data else getattr(model, name, None) for name in fields}


def _seconds(value_ms: int | float | Decimal | None) -> float | None:
    return None if value_ms is None else float(value_ms) / 1000


def _bound(view: type[ModelView] | type[BaseView]) -> Any:
    """A subclass per admin site: SQLAdmin stores the site and session factory on the view class itself."""
    return type(view.__name__, (view,), {"__module__": view.__module__})


def mount_admin(app: FastAPI, settings: Settings) -> SalesbotAdmin:
    return SalesbotAdmin(app, settings)
