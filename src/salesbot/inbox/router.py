"""Provider webhooks: verify, parse, hand to the inbox service, acknowledge. Nothing slow happens here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from salesbot.dependencies import ResourcesDep, get_resources
from salesbot.inbox import service, spool
from salesbot.inbox.batcher import InboxBatcher
from salesbot.kit import tracing
from salesbot.kit.errors import AppError
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import InboundEvent, MessagingProvider, WebhookRequest
from salesbot.messaging.registry import Providers, build_providers
from salesbot.models import Channel
from salesbot.observability import metrics
from salesbot.resources import Resources

log = get_logger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
OK_JSON = b'{"ok":true}'
# The Wazzup route reads its secret from the request (the adapter compares it), not from its signature: FastAPI's
# validation of a declared path parameter was a good part of what the route itself cost per webhook. Declared here
# so the API's schema still documents it.
_SECRET_PARAMETER = {
    "name": "secret",
    "in": "path",
    "required": True,
    "description": "`WAZZUP_WEBHOOK_SECRET` (404 when wrong)",
    "schema": {"type": "string"},
}
_OK_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object", "example": {"ok": True}}}}}
}


def _ok() -> Response:
    """`{"ok": true}`, already encoded: a webhook's answer needs no serialization."""
    return Response(OK_JSON, media_type="application/json")


def _providers(request: Request, resources: Resources) -> Providers:
    """The app's provider adapters, built once per set of process resources."""
    cached: tuple[object, Providers] | None = getattr(request.app.state, "providers", None)
    if cached is None or cached[0] is not resources:
        cached = (resources, build_providers(resources))
        request.app.state.providers = cached
    return cached[1]


async def get_providers(request: Request, resources: ResourcesDep) -> Providers:
    return _providers(request, resources)


ProvidersDep = Annotated[Providers, Depends(get_providers)]


async def _webhook(request: Request, channel: Channel) -> service.InboxResult:
    """Receive a webhook for `channel`. Resources and providers are plain lookups here rather than `Depends`:
    FastAPI's dependency solving was a good part of the CPU a webhook costs outside the inbox itself."""
    resources = await get_resources(request)
    return await _receive(request, _providers(request, resources).get(channel), resources)


def _batcher(request: Request, resources: Resources) -> InboxBatcher:
    """The process's group commit (one per set of resources: every webhook of this process shares it)."""
    batcher: InboxBatcher | None = getattr(request.app.state, "inbox_batcher", None)
    if batcher is None or batcher.resources is not resources:
        batcher = request.app.state.inbox_batcher = InboxBatcher(resources)
    return batcher


async def _read(request: Request) -> WebhookRequest:
    return WebhookRequest(
        path=request.url.path,
        query=request.url.query,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
        path_params={name: str(value) for name, value in request.path_params.items()},
    )


async def _receive(request: Request, provider: MessagingProvider, resources: Resources) -> service.InboxResult:
    try:
        result = await _accept(request, provider, resources)
    except Exception as exc:
        await metrics.inc(
            metrics.WEBHOOKS, provider=provider.channel.value, outcome=metrics.webhook_failure_outcome(exc)
        )
        raise
    await metrics.record_webhook(provider.channel.value, result)
    await tracing.hand_over(resources.redis, *(f"turn:{c}" for c in sorted(result.conversation_ids)))
    return result


async def _accept(request: Request, provider: MessagingProvider, resources: Resources) -> service.InboxResult:
    webhook = await _read(request)
    provider.verify(webhook)
    events: list[InboundEvent] = provider.parse(webhook)
    try:
        # Durable in PostgreSQL, or (database unreachable) in the Redis spool, before the provider gets its 200.
        return await spool.accept(resources, provider.channel, events, batcher=_batcher(request, resources))
    except AppError:
        raise
    except Exception as exc:
        # Nothing was persisted (database and Redis down, spool full, or a bug): ask the provider to deliver again
        # later instead of answering 500.
        log.exception("inbox.unavailable", channel=provider.channel.value, error=type(exc).__name__)
        raise AppError("temporarily unavailable, retry later", status_code=503) from exc


@router.post(
    "/wazzup/{secret}",
    summary="Wazzup v3 webhook (messages, statuses, registration test)",
    response_class=Response,
    responses=_OK_RESPONSE,
    openapi_extra={"parameters": [_SECRET_PARAMETER]},
)
async def wazzup_webhook(request: Request) -> Response:
    """`secret` is `WAZZUP_WEBHOOK_SECRET`; the adapter compares it in constant time (404 when wrong)."""
    await _webhook(request, Channel.WAZZUP)
    return _ok()


@router.post("/twilio", summary="Twilio WhatsApp incoming message", response_class=Response)
async def twilio_webhook(request: Request) -> Response:
    await _webhook(request, Channel.TWILIO)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/twilio/status", summary="Twilio message status callback", response_class=Response)
async def twilio_status_webhook(request: Request) -> Response:
    await _webhook(request, Channel.TWILIO)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.get("/meta", summary="Meta webhook verification handshake", response_class=PlainTextResponse)
async def meta_verification(request: Request, providers: ProvidersDep) -> PlainTextResponse:
    """`hub.challenge` echoed as text when `hub.verify_token` is `META_VERIFY_TOKEN` (else 403)."""
    return PlainTextResponse(providers.meta.verify_subscription(request.query_params))


@router.post(
    "/meta",
    summary="Meta WhatsApp Cloud API webhook (messages, statuses, smb_message_echoes)",
    response_class=Response,
    responses=_OK_RESPONSE,
)
async def meta_webhook(request: Request) -> Response:
    """Signed with `X-Hub-Signature-256` over the raw body with `META_APP_SECRET` (403 when missing or wrong)."""
    await _webhook(request, Channel.META)
    return _ok()


@router.post("/console", summary="Console provider: a message from the simulator or `salesbot chat`")
async def console_webhook(request: Request) -> dict[str, Any]:
    result = await _webhook(request, Channel.CONSOLE)
    return {"ok": True, "duplicate": result.duplicates > 0, "conversation_ids": sorted(result.conversation_ids)}
