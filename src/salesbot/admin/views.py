"""SQLAdmin views: conversations (transcript and manager actions), products, knowledge, quotes, messages.

Vector and tsvector columns are never loaded for a page, never rendered and never in a form (pgvector values
break SQLAdmin's formatters; they are search machinery, not something a manager edits).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from sqladmin import BaseView, ModelView, expose
from sqladmin.filters import BooleanFilter
from sqlalchemy import Select, false, select
from sqlalchemy.orm import defer, selectinload
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms.validators import DataRequired, Length, NumberRange, Regexp, ValidationError

from salesbot.admin.auth import csrf_token
from salesbot.admin.filters import DistinctValuesFilter, EnumFilter
from salesbot.admin.presenters import bubbles
from salesbot.kit.phones import mask_phone, phone_from_chat_id
from salesbot.kit.urls import http_url
from salesbot.media import repository as media_repository
from salesbot.models import (
    Author,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    Direction,
    KnowledgeChunk,
    Message,
    MessageMedia,
    Owner,
    Product,
    Quote,
    SalesStage,
)
from salesbot.reporting import repository
from salesbot.reporting.repository import ConversationFilters, apply_conversation_filters

if TYPE_CHECKING:
    from salesbot.admin.site import SalesbotAdmin


def _money(value: Decimal | None, places: int = 2) -> str:
    return "" if value is None else f"{value:,.{places}f}"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pk(request: Request) -> int | None:
    return _parse_id(request.path_params.get("pk", ""))


class SiteView:
    """Access to the admin site (resources, settings) from a view; every view class is bound to one site."""

    _admin_ref: ClassVar[Any]

    @property
    def site(self) -> SalesbotAdmin:
        site: SalesbotAdmin = self._admin_ref
        return site


class SalesbotModelView(SiteView, ModelView):
    """SQLAdmin's model view, hardened: a malformed id is a 404 and search text never reaches SQL unsanitised."""

    def _stmt_by_identifier(self, identifier: str) -> Select[Any]:
        pk = _parse_id(identifier)
        # Every salesbot table has one BIGINT primary key: anything else matches no row (404), not a DB error.
        return select(self.model).where(self.pk_columns[0] == pk if pk is not None else false())

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        return super().search_query(stmt, _search_term(term))


def _parse_id(raw: object) -> int | None:
    if isinstance(raw, str) and raw.isdigit() and raw.isascii():
        value = int(raw)
        return value if 0 < value < 2**63 else None
    return None


def _files_by_message(files: list[MessageMedia]) -> dict[int, list[MessageMedia]]:
    grouped: dict[int, list[MessageMedia]] = {}
    for row in files:
        grouped.setdefault(row.message_id, []).append(row)
    return grouped


def _search_term(term: str) -> str:
    """At most 100 characters, without control characters (PostgreSQL refuses NUL in a query parameter)."""
    return "".join(ch for ch in term[:100] if ch.isprintable() or ch == " ")


class EmbeddedContentView(SalesbotModelView):
    """Products and knowledge: vector and tsvector columns are never loaded (they would break the views), rows are
    deactivated instead of deleted, and edits re-embed through the knowledge service."""

    details_template = "salesbot/toggle_details.html"
    active_meaning: ClassVar[str]
    inactive_meaning: ClassVar[str]

    def _without_vectors(self, stmt: Select[Any]) -> Select[Any]:
        model: type[Product] | type[KnowledgeChunk] = self.model
        return stmt.options(defer(model.embedding, raiseload=True), defer(model.search_vector, raiseload=True))

    def list_query(self, request: Request) -> Select[Any]:
        return self._without_vectors(select(self.model))

    def details_query(self, request: Request) -> Select[Any]:
        return self._without_vectors(super().details_query(request))

    async def details_context(self, request: Request) -> dict[str, Any]:
        return {
            "csrf_token": csrf_token(request),
            "active_meaning": self.active_meaning,
            "inactive_meaning": self.inactive_meaning,
        }

    def row_label(self, row: Any) -> str:
        raise NotImplementedError

    @expose("/{pk}/set-active", methods=["POST"])
    async def set_active(self, request: Request) -> Response:
        return await self.site.set_active(request, self.model, identity=self.identity, label=self.row_label)


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
            .options(selectinload(Conversation.customer))
        )

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        return apply_conversation_filters(stmt, ConversationFilters(search=_search_term(term)))

    def sort_query(self, stmt: Select[Any], request: Request) -> Select[Any]:
        if request.query_params.get("sortBy"):
            return super().sort_query(stmt, request)
        # Newest activity first; chats without messages after the others.
        return stmt.order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())

    def details_query(self, request: Request) -> Select[Any]:
        return self._stmt_by_identifier(request.path_params["pk"]).options(selectinload(Conversation.customer))

    async def details_context(self, request: Request) -> dict[str, Any]:
        pk = _pk(request)
        if pk is None:
            return {}
        async with self.site.resources.sessionmaker() as session:
            messages = await repository.list_messages(session, pk)
            quotes = await repository.list_quotes(session, pk)
            files = await media_repository.media_of(session, [m.id for m in messages])
        transcript = bubbles(messages)
        return {
            "bubbles": transcript,
            "turns": [bubble.turn for bubble in transcript if bubble.turn is not None],
            "quotes": quotes,
            "files": _files_by_message(files),
            "failed_count": sum(1 for b in transcript if b.status is DeliveryStatus.FAILED),
            "csrf_token": csrf_token(request),
            "takeover_hours": self.site.salesbot_settings.conversation.human_takeover_hours,
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

    @expose("/{pk}/take-over", methods=["POST"])
    async def take_over(self, request: Request) -> Response:
        return await self.site.conversation_action(request, "take_over")

    @expose("/{pk}/hand-back", methods=["POST"])
    async def hand_back(self, request: Request) -> Response:
        return await self.site.conversation_action(request, "hand_back")

    @expose("/{pk}/close", methods=["POST"])
    async def close(self, request: Request) -> Response:
        return await self.site.conversation_action(request, "close")

    @expose("/{pk}/send", methods=["POST"])
    async def send(self, request: Request) -> Response:
        return await self.site.conversation_action(request, "send")

    @expose("/{pk}/erase-customer", methods=["POST"])
    async def erase_customer(self, request: Request) -> Response:
        return await self.site.erase_customer_action(request)


def _image_url(form: Any, field: Any) -> None:
    """A photo URL the provider will fetch: http(s) or nothing (an empty field removes the photo)."""
    raw = (field.data or "").strip()
    if not raw:
        field.data = None
        return
    try:
        field.data = http_url(raw)
    except ValueError as error:
        raise ValidationError(f"Photo URL {error}") from None


class ProductAdmin(EmbeddedContentView, model=Product):
    name = "Product"
    name_plural = "Products"
    icon = "fa-solid fa-box"
    can_delete = False  # deactivate instead: quotes and chat history refer to products by SKU
    page_size = 25
    column_list: ClassVar[Any] = [
        Product.sku,
        Product.name,
        Product.category,
        Product.price,
        Product.currency,
        Product.stock,
        Product.active,
        Product.embedding_model,
        Product.updated_at,
    ]
    column_labels: ClassVar[Any] = {
        Product.sku: "SKU",
        Product.name: "Name",
        Product.category: "Category",
        Product.description: "Description",
        Product.price: "Price",
        Product.currency: "Currency",
        Product.stock: "Stock",
        Product.attributes: "Attributes",
        Product.active: "Active",
        Product.embedding_model: "Embedded with",
        Product.updated_at: "Updated",
    }
    column_formatters: ClassVar[Any] = {
        Product.price: lambda m, a: _money(m.price),
        Product.updated_at: lambda m, a: _when(m.updated_at),
    }
    column_searchable_list: ClassVar[Any] = [Product.sku, Product.name, Product.category]
    column_sortable_list: ClassVar[Any] = [Product.sku, Product.name, Product.price, Product.stock, Product.updated_at]
    column_default_sort: ClassVar[Any] = [("sku", False)]
    column_filters: ClassVar[Any] = [
        BooleanFilter(Product.active, title="Active", parameter_name="active"),
        DistinctValuesFilter(Product.category, title="Category", parameter_name="category", max_length=120),
    ]
    column_details_exclude_list: ClassVar[Any] = [Product.embedding, Product.search_vector]
    form_columns: ClassVar[Any] = [
        Product.sku,
        Product.name,
        Product.category,
        Product.description,
        Product.price,
        Product.currency,
        Product.stock,
        Product.attributes,
        Product.active,
        Product.image_url,
    ]
    form_args: ClassVar[Any] = {
        "sku": {"validators": [DataRequired(), Length(max=64)]},
        "name": {"validators": [DataRequired(), Length(max=300)]},
        "category": {"validators": [Length(max=120)]},
        "price": {"validators": [DataRequired(), NumberRange(min=0)]},
        "currency": {"validators": [DataRequired(), Regexp(r"^[A-Z]{3}$", message="three capital letters")]},
        "stock": {"validators": [NumberRange(min=0, max=2_147_483_647)]},
        "image_url": {"validators": [_image_url], "label": "Photo URL", "description": "http or https; empty: none"},
    }
    column_export_list: ClassVar[Any] = [
        Product.sku,
        Product.name,
        Product.category,
        Product.price,
        Product.currency,
        Product.stock,
        Product.active,
    ]
    active_meaning = "offered to customers"
    inactive_meaning = "never offered to customers"

    def row_label(self, row: Any) -> str:
        return str(row.sku)

    async def on_model_change(self, data: dict[str, Any], model: Any, is_created: bool, request: Request) -> None:
        await self.site.embed_product_form(data, model)


class KnowledgeAdmin(EmbeddedContentView, model=KnowledgeChunk):
    name = "Knowledge"
    name_plural = "Knowledge"
    icon = "fa-solid fa-book"
    can_delete = False  # deactivate instead: a re-import of the source would only bring a deleted passage back
    page_size = 25
    column_list: ClassVar[Any] = [
        KnowledgeChunk.id,
        KnowledgeChunk.source,
        KnowledgeChunk.chunk_index,
        KnowledgeChunk.title,
        KnowledgeChunk.language,
        KnowledgeChunk.active,
        KnowledgeChunk.embedding_model,
        KnowledgeChunk.updated_at,
    ]
    column_labels: ClassVar[Any] = {
        KnowledgeChunk.id: "ID",
        KnowledgeChunk.source: "Source",
        KnowledgeChunk.title: "Title",
        KnowledgeChunk.content: "Content",
        KnowledgeChunk.language: "Language",
        KnowledgeChunk.active: "Active",
        KnowledgeChunk.chunk_index: "Part",
        KnowledgeChunk.embedding_model: "Embedded with",
        KnowledgeChunk.updated_at: "Updated",
    }
    column_formatters: ClassVar[Any] = {KnowledgeChunk.updated_at: lambda m, a: _when(m.updated_at)}
    column_searchable_list: ClassVar[Any] = [KnowledgeChunk.source, KnowledgeChunk.title, KnowledgeChunk.content]
    column_sortable_list: ClassVar[Any] = [KnowledgeChunk.source, KnowledgeChunk.title, KnowledgeChunk.updated_at]
    column_default_sort: ClassVar[Any] = [("source", False), ("chunk_index", False)]
    column_filters: ClassVar[Any] = [
        BooleanFilter(KnowledgeChunk.active, title="Active", parameter_name="active"),
        DistinctValuesFilter(KnowledgeChunk.language, title="Language", parameter_name="language", max_length=8),
    ]
    column_details_exclude_list: ClassVar[Any] = [KnowledgeChunk.embedding, KnowledgeChunk.search_vector]
    form_columns: ClassVar[Any] = [
        KnowledgeChunk.source,
        KnowledgeChunk.chunk_index,
        KnowledgeChunk.title,
        KnowledgeChunk.content,
        KnowledgeChunk.language,
        KnowledgeChunk.active,
    ]
    form_args: ClassVar[Any] = {
        "source": {"validators": [DataRequired(), Length(max=500)]},
        "title": {"validators": [Length(max=300)]},
        "content": {"validators": [DataRequired()]},
        "language": {"validators": [Length(max=8)]},
        "chunk_index": {"validators": [NumberRange(min=0, max=100_000)]},
    }
    form_widget_args: ClassVar[Any] = {"content": {"rows": 14}}
    active_meaning = "used in the bot's answers"
    inactive_meaning = "never used in answers"

    def row_label(self, row: Any) -> str:
        return f"{row.source} part {row.chunk_index}"

    async def on_model_change(self, data: dict[str, Any], model: Any, is_created: bool, request: Request) -> None:
        await self.site.embed_chunk_form(data, model)


class QuoteAdmin(SalesbotModelView, model=Quote):
    name = "Quote"
    name_plural = "Quotes"
    icon = "fa-solid fa-file-invoice-dollar"
    can_create = False
    can_edit = False
    can_delete = False
    column_list: ClassVar[Any] = [
        Quote.id,
        Quote.conversation_id,
        Quote.subtotal,
        Quote.discount_pct,
        Quote.total,
        Quote.currency,
        Quote.created_at,
    ]
    column_labels: ClassVar[Any] = {Quote.conversation_id: "Conversation", Quote.discount_pct: "Discount %"}
    column_formatters: ClassVar[Any] = {
        Quote.subtotal: lambda m, a: _money(m.subtotal),
        Quote.total: lambda m, a: _money(m.total),
        Quote.created_at: lambda m, a: _when(m.created_at),
    }
    column_sortable_list: ClassVar[Any] = [Quote.id, Quote.total, Quote.created_at]
    column_default_sort: ClassVar[Any] = [("id", True)]
    details_template = "salesbot/quote_details.html"

    @expose("/{pk}/pdf", methods=["GET"])
    async def pdf(self, request: Request) -> Response:
        """The quotation document, as the customer receives it."""
        return await self.site.quote_pdf(request)


class MessageAdmin(SalesbotModelView, model=Message):
    name = "Message"
    name_plural = "Messages"
    icon = "fa-solid fa-envelope"
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    page_size = 50
    column_list: ClassVar[Any] = [
        Message.id,
        Message.conversation_id,
        Message.direction,
        Message.author,
        Message.text,
        Message.delivery_status,
        Message.error,
        Message.created_at,
    ]
    column_labels: ClassVar[Any] = {Message.conversation_id: "Conversation", Message.delivery_status: "Delivery"}
    column_formatters: ClassVar[Any] = {
        Message.text: lambda m, a: m.text if len(m.text) <= 80 else m.text[:79] + "…",
        Message.created_at: lambda m, a: _when(m.created_at),
        Message.direction: lambda m, a: m.direction.value,
        Message.author: lambda m, a: m.author.value,
        Message.delivery_status: lambda m, a: m.delivery_status.value if m.delivery_status else "",
    }
    column_searchable_list: ClassVar[Any] = [Message.text]
    column_sortable_list: ClassVar[Any] = [Message.id, Message.created_at]
    column_default_sort: ClassVar[Any] = [("id", True)]
    column_filters: ClassVar[Any] = [
        EnumFilter(Message.direction, Direction, title="Direction", parameter_name="direction"),
        EnumFilter(Message.author, Author, title="Author", parameter_name="author"),
        EnumFilter(Message.delivery_status, DeliveryStatus, title="Delivery", parameter_name="delivery"),
    ]


class DashboardView(SiteView, BaseView):
    name = "Dashboard"
    icon = "fa-solid fa-chart-line"

    @expose("/dashboard", methods=["GET"], identity="dashboard")
    async def dashboard(self, request: Request) -> Response:
        return await self.site.render_dashboard(request)


def index_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("admin:view-dashboard"), status_code=302)


MODEL_VIEWS: tuple[type[ModelView], ...] = (ConversationAdmin, ProductAdmin, KnowledgeAdmin, QuoteAdmin, MessageAdmin)
