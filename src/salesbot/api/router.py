"""`/api/v1`: thin routes over `api.service` (the request's session commits; jobs are enqueued after the commit)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from salesbot.agent.playbook import load_playbook
from salesbot.api import service
from salesbot.api.dependencies import ActorDep, ConversationFiltersDep, PageDep, require_api_token
from salesbot.api.schemas import (
    DB_ID_MAX,
    SEARCH_PATTERN,
    ConversationDetail,
    ConversationOut,
    ConversationPatch,
    ErasedCustomerOut,
    ManagerMessageIn,
    MessageOut,
    Page,
    ProductCreate,
    ProductOut,
    ProductPatch,
    QuoteOut,
)
from salesbot.audit import repository as audit
from salesbot.conversations.manager_actions import FieldError
from salesbot.customers.service import erase_customer
from salesbot.dependencies import RedisDep, ResourcesDep, SessionDep, SettingsDep
from salesbot.documents.router import pdf_response
from salesbot.documents.service import quote_pdf
from salesbot.knowledge.embeddings import get_embedder
from salesbot.reporting.repository import ConversationSort, ProductFilters
from salesbot.reporting.stats import DashboardStats, compute_stats


class ErrorOut(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "The body could not be read (not UTF-8, or not JSON)",
        401: "Missing or invalid API token",
        404: "Not found",
        409: "Conflicts with the current state",
    }
    return {code: {"model": ErrorOut, "description": descriptions[code]} for code in codes}


def _field_error(exc: FieldError) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", exc.field), "msg": exc.message, "input": None}]
    )


router = APIRouter(
    prefix="/api/v1",
    tags=["operations"],
    dependencies=[Depends(require_api_token)],
    responses=_errors(401),
)

ConversationId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="conversation id")]
ProductId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="product id")]
QuoteId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="quote id")]
CustomerId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="customer id")]
SortParam = Annotated[
    ConversationSort, Query(description="sort key; a leading '-' sorts descending (newest activity first)")
]


@router.get("/conversations", summary="List conversations")
async def list_conversations(
    session: SessionDep,
    filters: ConversationFiltersDep,
    paging: PageDep,
    sort: SortParam = ConversationSort.LAST_MESSAGE_AT_DESC,
) -> Page[ConversationOut]:
    return await service.conversations_page(session, filters, sort, paging)


@router.get(
    "/conversations/export.csv",
    summary="Export conversations as CSV (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, one row per conversation"}
    },
)
async def export_conversations(
    resources: ResourcesDep,
    filters: ConversationFiltersDep,
    sort: SortParam = ConversationSort.LAST_MESSAGE_AT_DESC,
) -> StreamingResponse:
    filename = f"conversations-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        service.export_conversations_csv(resources.sessionmaker, filters, sort),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/conversations/{conversation_id:int}", summary="A conversation with its messages", responses=_errors(404))
async def get_conversation(session: SessionDep, conversation_id: ConversationId) -> ConversationDetail:
    return await service.conversation_detail(session, conversation_id)


@router.patch(
    "/conversations/{conversation_id:int}",
    summary="Change status, stage, owner or the customer's name",
    description=(
        "Stage changes follow the sales funnel (DESIGN.md): an invalid stage or transition is a 422. "
        "`owner: human` takes the chat over for HUMAN_TAKEOVER_HOURS (pending bot replies are withdrawn); "
        "`owner: bot` hands it back; `status: closed` closes it; `assignee` assigns it to a manager (null: nobody). "
        "Every change is recorded in the conversation's `events` with the caller (the token's user, or `api`)."
    ),
    responses=_errors(400, 404, 409),
)
async def patch_conversation(
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    conversation_id: ConversationId,
    patch: ConversationPatch,
) -> ConversationOut:
    try:
        return await service.patch_conversation(session, settings, conversation_id, patch, actor)
    except FieldError as exc:
        raise _field_error(exc) from exc


@router.post(
    "/conversations/{conversation_id:int}/messages",
    summary="Send a message as the manager",
    description=(
        "Queued through the outbox like any reply (delivered, retried, recorded); the manager becomes the owner of "
        "the chat. Returns the queued message parts (a long text is split to the channel's limit)."
    ),
    status_code=status.HTTP_201_CREATED,
    responses=_errors(400, 404),
)
async def post_manager_message(
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
    background: BackgroundTasks,
    actor: ActorDep,
    conversation_id: ConversationId,
    body: ManagerMessageIn,
) -> list[MessageOut]:
    try:
        messages = await service.send_manager_message(session, settings, conversation_id, body.text, actor)
    except FieldError as exc:
        raise _field_error(exc) from exc
    # Background tasks run after the session dependency committed (SessionDep has function scope).
    background.add_task(service.schedule_delivery_after_commit, redis, conversation_id)
    return messages


@router.get("/products", summary="List products")
async def list_products(
    session: SessionDep,
    paging: PageDep,
    q: Annotated[
        str | None, Query(max_length=200, pattern=SEARCH_PATTERN, description="substring of SKU, name or category")
    ] = None,
    sku: Annotated[str | None, Query(max_length=64, pattern=SEARCH_PATTERN, description="exact SKU")] = None,
    category: Annotated[str | None, Query(max_length=120, pattern=SEARCH_PATTERN)] = None,
    active: Annotated[bool | None, Query(description="only active (true) or deactivated (false) products")] = None,
) -> Page[ProductOut]:
    filters = ProductFilters(search=q, sku=sku, category=category, active=active)
    return await service.products_page(session, filters, paging)


@router.post("/products", summary="Create a product", status_code=status.HTTP_201_CREATED, responses=_errors(400, 409))
async def create_product(
    session: SessionDep, settings: SettingsDep, actor: ActorDep, body: ProductCreate
) -> ProductOut:
    currency = load_playbook(settings.conversation.playbook_path or None).currency
    return await service.create_product(session, get_embedder(settings), body, default_currency=currency, actor=actor)


@router.patch(
    "/products/{product_id:int}",
    summary="Change a product (text changes re-embed it)",
    description="Omitted fields keep their value; set `active: false` to deactivate.",
    responses=_errors(400, 404, 409),
)
async def update_product(
    session: SessionDep, settings: SettingsDep, actor: ActorDep, product_id: ProductId, body: ProductPatch
) -> ProductOut:
    return await service.update_product(session, get_embedder(settings), product_id, body, actor)


@router.get("/products/{product_id:int}", summary="A product", responses=_errors(404))
async def get_product(session: SessionDep, product_id: ProductId) -> ProductOut:
    return await service.get_product(session, product_id)


@router.get("/quotes/{quote_id:int}", summary="A quote", responses=_errors(404))
async def get_quote(session: SessionDep, quote_id: QuoteId) -> QuoteOut:
    return await service.get_quote(session, quote_id)


@router.get(
    "/quotes/{quote_id:int}.pdf",
    summary="A quote as a PDF document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **_errors(404)},
)
async def get_quote_pdf(session: SessionDep, settings: SettingsDep, quote_id: QuoteId) -> Response:
    document, content = await quote_pdf(session, quote_id, settings)
    return pdf_response(document.filename, content)


@router.delete(
    "/customers/{customer_id:int}",
    summary="Erase a customer and all their data",
    description="Deletes the customer, their conversations, messages, quotes and memory. Cannot be undone.",
    responses=_errors(404),
)
async def delete_customer(session: SessionDep, actor: ActorDep, customer_id: CustomerId) -> ErasedCustomerOut:
    erased = await erase_customer(session, customer_id)
    await audit.record(session, actor, "erase_customer", details={"customer": customer_id})
    return ErasedCustomerOut(**vars(erased))


@router.get("/stats", summary="Dashboard numbers")
async def get_stats(
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=366, description="whole UTC days, ending today")] = 14,
) -> DashboardStats:
    return await compute_stats(session, days=days, now=datetime.now(UTC))
