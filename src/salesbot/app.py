"""The FastAPI application: routers, error handling and the lifespan that owns process resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from salesbot.health.router import router as health_router
from salesbot.kit.errors import AppError
from salesbot.kit.logging import configure_logging, get_logger
from salesbot.resources import open_resources
from salesbot.settings import Settings, get_settings

log = get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            log.info("api.started", env=settings.env.value)
            yield
        log.info("api.stopped")

    app = FastAPI(
        title="salesbot",
        version="0.1.0",
        description="WhatsApp sales assistant: provider webhooks, operations API and admin.",
        lifespan=lifespan,
    )

    @app.exception_handler(AppError)
    async def app_error_handler(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    app.include_router(health_router)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for `salesbot serve` (settings and logging from the environment)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
