"""The FastAPI application: routers, error handling and the lifespan that owns process resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from salesbot.admin.site import mount_admin
from salesbot.api.middleware import AllowHeaderMiddleware
from salesbot.api.router import router as api_router
from salesbot.documents.router import router as documents_router
from salesbot.health.router import router as health_router
from salesbot.inbox.batcher import LINGER_SECONDS, InboxBatcher
from salesbot.inbox.router import router as inbox_router
from salesbot.kit import tracing
from salesbot.kit.body_timeout import BodyReadTimeoutMiddleware
from salesbot.kit.errors import AppError
from salesbot.kit.heap import freeze_startup_heap
from salesbot.kit.logging import configure_logging, get_logger
from salesbot.observability.router import router as metrics_router
from salesbot.payments.router import pages as payment_pages
from salesbot.payments.router import router as payments_router
from salesbot.resources import open_resources
from salesbot.settings import Settings, get_settings
from salesbot.simulator.router import router as simulator_router

log = get_logger(__name__)

# No request this service accepts is larger (provider webhooks are a few KiB): bigger bodies get 413 unread.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
# A body still incomplete this long after the request started gets 408 (uvicorn does not bound a slow upload).
REQUEST_BODY_TIMEOUT_SECONDS = 30.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            admin.bind(resources)
            # The inbox's group commit keeps its connection through quiet moments, until the app stops.
            batcher = app.state.inbox_batcher = InboxBatcher(resources, linger_seconds=LINGER_SECONDS)
            freeze_startup_heap()
            log.info("api.started", env=settings.env.value)
            try:
                yield
            finally:
                await batcher.close()
        log.info("api.stopped")

    # The same app as FastAPI(...), with /docs and /redoc served from assets inside the fastapi-offline package
    # instead of a CDN: the documentation works on a closed network.
    app = FastAPIOffline(
        title="salesbot",
        version="0.1.0",
        description="WhatsApp sales assistant: provider webhooks, operations API and admin.",
        lifespan=lifespan,
        # Enforced by Starlette while the body streams in (and on Content-Length): 413 before anything is parsed.
        max_body_size=MAX_REQUEST_BODY_BYTES,
    )

    @app.exception_handler(AppError)
    async def app_error_handler(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    app.include_router(health_router)
    app.include_router(inbox_router)
    app.include_router(payments_router)
    app.include_router(payment_pages)
    app.include_router(api_router)
    app.include_router(documents_router)
    app.include_router(metrics_router)
    app.add_middleware(AllowHeaderMiddleware, routes=api_router.routes, prefix=api_router.prefix)
    app.add_middleware(BodyReadTimeoutMiddleware, seconds=REQUEST_BODY_TIMEOUT_SECONDS)
    if settings.console_provider_enabled:
        app.include_router(simulator_router)
    admin = mount_admin(app, settings)
    if tracing.setup(settings.otel_exporter_otlp_endpoint, service="salesbot-api"):
        tracing.instrument_app(app)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for `salesbot serve` (settings and logging from the environment)."""
    settings = get_settings()
    configure_logging(settings.log_level, phone_region=settings.phone_default_region)
    return create_app(settings)
