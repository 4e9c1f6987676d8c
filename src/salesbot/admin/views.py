"""SQLAdmin views: products, knowledge, quotes, messages (the conversations have their own module).

Vector and tsvector columns are never loaded for a page, never rendered and never in a form (pgvector values
break SQLAdmin's formatters; they are search machinery, not something a manager edits). Edits of products and
knowledge re-embed through the knowledge service and are recorded in the audit log with the manager.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqladmin import ModelView, expose
from sqladmin.filters import BooleanFilter
from sqladmin.flash import Flash
from sqlalchemy import Select, select
from sqlalchemy.orm import defer
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms.validators import DataRequired, Length, NumberRange, Regexp, ValidationError

from salesbot.admin.accounts_views import ACCOUNT_VIEWS
from salesbot.admin.auth import csrf_token, current_actor
from salesbot.admin.context import (
    ReadOnlyModelView,
    SalesbotModelView,
    SiteView,
    _money,
    _parse_id,
    _pk,
    _search_term,
    _when,
    checked_form,
)
from salesbot.admin.conversation_view import ConversationAdmin
from salesbot.admin.filters import DistinctValuesFilter, EnumFilter
from salesbot.audit import repository as audit
from salesbot.db import unit_of_work
from salesbot.documents.router import pdf_response
from salesbot.documents.service import quote_pdf
from salesbot.kit.errors import NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.kit.urls import http_url
from salesbot.knowledge.editing import chunk_text, embedding_update, product_text
from salesbot.knowledge.embeddings import get_embedder
from salesbot.models import (
    Author,
    DeliveryStatus,
    Direction,
    KnowledgeChunk,
    Message,
    Product,
    Quote,
)

log = get_logger(__name__)

# Names other admin modules import from here.
__all__ = [
    "MODEL_VIEWS",
    "SalesbotModelView",
    "SiteView",
    "_money",
    "_parse_id",
    "_pk",
    "_search_term",
    "_when",
]

PRODUCT_TEXT_FIELDS = ("sku", "name", "category", "description", "attributes")


def _merged(data: dict[str, Any], model: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The row's values after the form is applied: submitted fields over the stored ones."""
    return {name: data[name] if name in data else getattr(model, name, None) for name in fields}


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

    # The audit log's name for an edit of this kind of row ("edit_product").
    audit_noun: ClassVar[str]

    def row_label(self, row: Any) -> str:
        raise NotImplementedError

    def document(self, values: dict[str, Any]) -> str:
        """The text that gets embedded, from the row's values after the form is applied."""
        raise NotImplementedError

    document_fields: ClassVar[tuple[str, ...]]

    async def on_model_change(self, data: dict[str, Any], model: Any, is_created: bool, request: Request) -> None:
        """Before SQLAdmin saves the row: embed its text if that changed (the vector lands in the same commit)."""
        update = await embedding_update(
            get_embedder(self.site.salesbot_settings),
            self.document(_merged(data, model, self.document_fields)),
            current_hash=getattr(model, "content_hash", None),
            current_model=getattr(model, "embedding_model", None),
        )
        if update is not None:
            data.update(update.as_values())

    async def after_model_change(self, data: dict[str, Any], model: Any, is_created: bool, request: Request) -> None:
        # SQLAdmin commits the row in its own session before this runs, so the record is a second short commit.
        action = f"{'create' if is_created else 'edit'}_{self.audit_noun}"
        async with unit_of_work(self.site.resources.sessionmaker) as session:
            await audit.record(
                session,
                current_actor(request),
                action,
                details={self.audit_noun: model.id, "label": self.row_label(model), "fields": sorted(data)},
            )

    @expose("/{pk}/set-active", methods=["POST"])
    async def set_active(self, request: Request) -> Response:
        """Activate or deactivate a product or a knowledge passage (a POST form with the CSRF token)."""
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        pk = _pk(request)
        active = form.get("active")
        if pk is None or active not in ("true", "false"):
            raise HTTPException(status_code=404 if pk is None else 400)
        model: type[Product] | type[KnowledgeChunk] = self.model
        async with unit_of_work(self.site.resources.sessionmaker) as session:
            row: Product | KnowledgeChunk | None = await session.scalar(
                select(model).where(model.id == pk).with_for_update()
            )
            if row is None:
                raise HTTPException(status_code=404)
            row.active = active == "true"
            await audit.record(
                session,
                current_actor(request),
                f"{'activate' if row.active else 'deactivate'}_{self.audit_noun}",
                details={self.audit_noun: row.id, "label": self.row_label(row)},
            )
        log.info("admin.active_changed", identity=self.identity, pk=pk, active=row.active)
        Flash.success(request, f"{self.row_label(row)} is now {'active' if row.active else 'deactivated'}.")
        return RedirectResponse(request.url_for("admin:details", identity=self.identity, pk=str(pk)), status_code=303)


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

    audit_noun = "product"
    document_fields = PRODUCT_TEXT_FIELDS

    def row_label(self, row: Any) -> str:
        return str(row.sku)

    def document(self, values: dict[str, Any]) -> str:
        return product_text(values)


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

    audit_noun = "knowledge"
    document_fields = ("title", "content")

    def row_label(self, row: Any) -> str:
        return f"{row.source} part {row.chunk_index}"

    def document(self, values: dict[str, Any]) -> str:
        return chunk_text(values)


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
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        try:
            async with self.site.resources.sessionmaker() as session:
                document, content = await quote_pdf(session, pk, self.site.salesbot_settings)
        except NotFoundError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc
        return pdf_response(document.filename, content)


class MessageAdmin(ReadOnlyModelView, model=Message):
    name = "Message"
    name_plural = "Messages"
    icon = "fa-solid fa-envelope"
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


MODEL_VIEWS: tuple[type[ModelView], ...] = (
    ConversationAdmin,
    ProductAdmin,
    KnowledgeAdmin,
    QuoteAdmin,
    MessageAdmin,
    *ACCOUNT_VIEWS,
)
