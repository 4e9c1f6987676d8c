from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.app import create_app
from salesbot.settings import Settings
from tests.browser import browser, chromium_paths, demo_catalog  # noqa: F401  (fixtures for the browser tests)

ADMIN_USER = "manager"
ADMIN_PASSWORD = "correct horse battery staple"
BASE = "http://testserver"


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    auth = settings.auth.model_copy(
        update={
            "admin_username": ADMIN_USER,
            "admin_password": SecretStr(ADMIN_PASSWORD),
            "secret_key": SecretStr("admin-tests-secret-key-0123456789abcdef"),
        }
    )
    return settings.model_copy(update={"auth": auth})


@pytest.fixture
async def admin_app(
    admin_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running; tables truncated and Redis flushed afterwards."""
    app = create_app(admin_settings)
    async with app.router.lifespan_context(app):
        yield app


def client_for(
    app: FastAPI, *, base_url: str = BASE, client: tuple[str, int] = ("127.0.0.1", 50000)
) -> httpx.AsyncClient:
    # Browsers send Origin on every form POST; the admin refuses state changes without a same-origin one.
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=client), base_url=base_url, headers={"Origin": base_url}
    )


@pytest.fixture
async def anonymous(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(admin_app) as client:
        yield client


async def login(
    client: httpx.AsyncClient, *, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD
) -> httpx.Response:
    return await client.post("/admin/login", data={"username": username, "password": password})


@pytest.fixture
async def manager(anonymous: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await login(anonymous)
    assert response.status_code == 302, response.text
    return anonymous


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


PageGetter = Callable[[str], Awaitable[httpx.Response]]
