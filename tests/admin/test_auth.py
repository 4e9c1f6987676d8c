"""Admin login: every page needs it, sessions are signed and scoped, throttling, CSRF and same-origin checks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.accounts import service as accounts
from salesbot.admin import auth, throttle
from salesbot.app import create_app
from salesbot.devstack import EmbeddedRedis
from salesbot.models import Owner
from salesbot.settings import Settings
from tests.admin.conftest import ADMIN_PASSWORD, ADMIN_USER, client_for, csrf_from, login
from tests.reporting.factories import make_chat

PAGES = [
    "/admin/",
    "/admin/dashboard",
    "/admin/conversation/list",
    "/admin/conversation/details/1",
    "/admin/product/list",
    "/admin/product/create",
    "/admin/product/edit/1",
    "/admin/knowledge-chunk/list",
    "/admin/quote/list",
    "/admin/message/list",
    "/admin/audit-event/list",
    "/admin/user/list",
    "/admin/api-token/list",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_admin_page_sends_anonymous_visitors_to_the_login(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 302
    assert response.headers["location"].endswith("/admin/login")


@pytest.mark.parametrize("action", ["take-over", "hand-back", "close", "send", "stage", "assign"])
async def test_actions_need_a_login(
    anonymous: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], action: str
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    response = await anonymous.post(f"/admin/conversation/{chat.conversation.id}/{action}", data={"text": "x"})
    assert response.status_code == 302
    assert response.headers["location"].endswith("/admin/login")


async def test_login_with_the_configured_account_opens_the_dashboard(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/admin/login")
    assert page.status_code == 200
    response = await login(anonymous)
    assert response.status_code == 302
    dashboard = await anonymous.get("/admin/", follow_redirects=True)
    assert dashboard.status_code == 200
    assert str(dashboard.url).endswith("/admin/dashboard")
    assert "Sales funnel" in dashboard.text


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (ADMIN_USER, "wrong"),
        ("someone", ADMIN_PASSWORD),
        (ADMIN_USER, ADMIN_PASSWORD + " "),
        (ADMIN_USER.upper(), ADMIN_PASSWORD),
        ("", ""),
    ],
)
async def test_wrong_credentials_are_refused(anonymous: httpx.AsyncClient, username: str, password: str) -> None:
    response = await login(anonymous, username=username, password=password)
    assert response.status_code == 400
    assert "Invalid credentials" in response.text
    assert (await anonymous.get("/admin/dashboard")).status_code == 302


async def test_session_cookie_flags_over_http(anonymous: httpx.AsyncClient) -> None:
    response = await login(anonymous)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/admin" in flags
    assert f"max-age={auth.SESSION_MAX_AGE}" in flags
    assert "secure" not in flags


async def test_session_cookie_is_secure_over_https(admin_app: FastAPI) -> None:
    async with client_for(admin_app, base_url="https://testserver") as client:
        response = await login(client)
        assert response.status_code == 302
        assert "secure" in {part.strip().lower() for part in response.headers["set-cookie"].split(";")}
        # A proxy-terminated request arrives as https once uvicorn trusts X-Forwarded-Proto; the app sees the scheme.
        assert (await client.get("/admin/dashboard")).status_code == 200


async def test_logout_ends_the_session(manager: httpx.AsyncClient) -> None:
    assert (await manager.get("/admin/dashboard")).status_code == 200
    response = await manager.get("/admin/logout")
    assert response.status_code == 302
    assert (await manager.get("/admin/dashboard")).status_code == 302


async def test_a_forged_or_foreign_session_cookie_is_ignored(
    admin_app: FastAPI, admin_settings: Settings, manager: httpx.AsyncClient
) -> None:
    cookie = manager.cookies[auth.SESSION_COOKIE]
    payload, _, signature = cookie.partition(".")
    # Same content, signature broken.
    async with client_for(admin_app) as client:
        client.cookies.set(auth.SESSION_COOKIE, payload + ".x" + signature[2:], path="/admin")
        assert (await client.get("/admin/dashboard")).status_code == 302
    # Content rewritten (unsigned JSON claiming the user).
    forged = base64.b64encode(json.dumps({"user": ADMIN_USER, "pw": "x", "csrf": "y"}).encode()).decode()
    async with client_for(admin_app) as client:
        client.cookies.set(auth.SESSION_COOKIE, forged, path="/admin")
        assert (await client.get("/admin/dashboard")).status_code == 302


async def test_changing_the_password_or_the_secret_key_ends_existing_sessions(
    admin_settings: Settings,
    manager: httpx.AsyncClient,
    redis: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cookie = manager.cookies[auth.SESSION_COOKIE]
    # ADMIN_PASSWORD only created the first admin: changing it later changes nothing.
    new_setting = admin_settings.model_copy(
        update={"auth": admin_settings.auth.model_copy(update={"admin_password": SecretStr("another long password")})}
    )
    new_secret = admin_settings.model_copy(
        update={
            "auth": admin_settings.auth.model_copy(update={"secret_key": SecretStr("another-secret-key-9876543210")})
        }
    )

    async def status_with(settings: Settings) -> int:
        app = create_app(settings)
        async with app.router.lifespan_context(app), client_for(app) as client:
            client.cookies.set(auth.SESSION_COOKIE, cookie, path="/admin")
            return (await client.get("/admin/dashboard")).status_code

    assert await status_with(admin_settings) == 200
    assert await status_with(new_setting) == 200
    assert await status_with(new_secret) == 302
    async with sessionmaker() as session:
        await accounts.set_password(session, ADMIN_USER, "a brand new password")
        await session.commit()
    assert await status_with(admin_settings) == 302


async def test_repeated_failures_from_one_address_are_throttled(admin_app: FastAPI) -> None:
    async with client_for(admin_app, client=("203.0.113.7", 4000)) as attacker:
        for _ in range(throttle.MAX_FAILURES_PER_ADDRESS):
            assert (await login(attacker, password="guess")).status_code == 400
        blocked = await login(attacker)  # even the right password, until the window ends
        assert blocked.status_code == 429
        assert "Too many failed logins" in blocked.text
        assert (await attacker.get("/admin/dashboard")).status_code == 302
    # Another address is not affected, and a success clears that address's count.
    async with client_for(admin_app, client=("198.51.100.9", 4000)) as manager:
        assert (await login(manager, password="typo")).status_code == 400
        assert (await login(manager)).status_code == 302


async def test_guessing_one_username_from_many_addresses_is_throttled(
    admin_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "MAX_FAILURES_PER_ACCOUNT", 3)
    for index in range(3):
        async with client_for(admin_app, client=(f"192.0.2.{index}", 4000)) as client:
            assert (await login(client, password="guess")).status_code == 400
    async with client_for(admin_app, client=("192.0.2.200", 4000)) as client:
        assert (await login(client)).status_code == 429


async def test_cross_origin_posts_are_refused_and_change_nothing(
    admin_app: FastAPI, manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    details = await manager.get(f"/admin/conversation/details/{chat.conversation.id}")
    token = csrf_from(details.text)
    url = f"/admin/conversation/{chat.conversation.id}/take-over"
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": "", "Referer": ""}):
        response = await manager.post(url, data={"csrf_token": token}, headers=headers)
        assert response.status_code == 403, headers
    # Referer stands in for a missing Origin.
    ok = await manager.post(
        url, data={"csrf_token": token}, headers={"Origin": "", "Referer": "http://testserver/admin/x"}
    )
    assert ok.status_code == 303
    # The login form is protected too (login CSRF).
    async with client_for(admin_app) as client:
        response = await client.post(
            "/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}, headers={"Origin": "http://evil"}
        )
        assert response.status_code == 403


async def test_actions_need_the_sessions_csrf_token(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    url = f"/admin/conversation/{chat.conversation.id}/take-over"
    assert (await manager.post(url)).status_code == 403
    assert (await manager.post(url, data={"csrf_token": "forged"})).status_code == 403
    async with sessionmaker() as session:
        conversation = await session.get(type(chat.conversation), chat.conversation.id)
        assert conversation is not None
        assert conversation.owner is Owner.BOT


async def test_login_is_refused_while_the_throttle_cannot_be_checked(
    admin_settings: Settings, tmp_path: Path, clean_db: None
) -> None:
    doomed = EmbeddedRedis(tmp_path, persistent=False)
    doomed.start()
    app = create_app(admin_settings.model_copy(update={"redis_url": doomed.url}))
    async with app.router.lifespan_context(app), client_for(app) as client:
        assert (await login(client, password="wrong")).status_code == 400
        doomed.stop()
        response = await login(client)
    # Without Redis, failed attempts could not be counted: no login at all rather than unlimited guessing.
    assert response.status_code == 503
    assert "temporarily unavailable" in response.text
