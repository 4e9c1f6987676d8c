from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.app import create_app
from salesbot.settings import Settings

API_TOKEN = "test-api-token-0123456789"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": settings.auth.model_copy(update={"api_token": SecretStr(API_TOKEN)})})


@pytest.fixture
async def anonymous(
    api_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real lifespan (database, Redis); no credentials. Tables are truncated afterwards."""
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture
def api(anonymous: httpx.AsyncClient) -> httpx.AsyncClient:
    anonymous.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return anonymous
