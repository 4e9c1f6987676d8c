"""Every route the app serves requires authentication, except health checks, provider webhooks (they prove who
sends them instead, see test_webhook_authenticity.py) and a short list of public pages that carry no data.

The test walks the app's real route table, mounted sub-applications (the admin) included, and calls every
method of every route without credentials (path parameters filled with plausible values, bodies empty or
minimal, Origin set to the app itself so the admin's cross-site check is not what answers). A route added
later without protection fails here, as does a route missing from the list below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount

from salesbot.app import create_app
from salesbot.settings import AuthSettings, ConversationSettings, Settings

BASE = "http://testserver"

# Public on purpose; everything else must refuse an anonymous caller.
HEALTH = {"/healthz", "/readyz"}
WEBHOOKS = re.compile(r"^/webhooks/")
# Pages without data: the API documentation and its assets, the admin's login page, logout and its static files,
# and the pages Stripe's checkout sends a paying customer back to.
PUBLIC_PAGES = {
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/admin/login",
    "/admin/logout",
    "/payments/success",
    "/payments/cancelled",
}
PUBLIC_PREFIXES = ("/admin/statics", "/static-offline-docs")
# Development tooling that exists only while the console provider is on (never by default in production).
CONSOLE_ONLY = re.compile(r"^/simulator")


@dataclass(frozen=True)
class Endpoint:
    path: str
    method: str


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[Endpoint]:
    """Every (path, method) the app answers, through included routers and mounted sub-applications."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, Mount):
            sub = getattr(route.app, "routes", None)
            if sub is None:  # a static-files mount
                yield Endpoint(prefix + route.path + "/{path}", "GET")
            else:
                yield from walk(sub, prefix + route.path)
        elif context.path is not None:
            for method in sorted(context.methods or {"GET"}):
                if method != "HEAD":
                    yield Endpoint(prefix + context.path, method)


def concrete(path: str) -> str:
    """A request path for a route template: ids become 1, identities a real model name, the rest a word."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name == "identity":
            return "conversation"
        if name in ("pk", "conversation_id", "product_id", "quote_id") or "int" in match.group(1):
            return "1"
        return "x"

    return re.sub(r"{([^}]+)}", value, path)


def public(path: str) -> bool:
    return path in HEALTH or path in PUBLIC_PAGES or path.startswith(PUBLIC_PREFIXES) or bool(WEBHOOKS.match(path))


def refused(response: httpx.Response) -> bool:
    """401/403, or a redirect to the admin login page."""
    if response.status_code in (401, 403):
        return True
    return response.status_code in (302, 303, 307) and "/admin/login" in response.headers.get("location", "")


async def test_every_route_but_health_webhooks_and_public_pages_requires_authentication(
    app_with_lifespan: FastAPI,
) -> None:
    app = app_with_lifespan
    endpoints = list(walk(app.routes))
    protected = [e for e in endpoints if not public(e.path)]
    # The walk found the surfaces that matter (REST API and admin), so an empty table cannot pass.
    assert any(e.path.startswith("/api/v1/") for e in protected)
    assert any(e.path.startswith("/admin/") for e in protected)
    assert not [e for e in endpoints if CONSOLE_ONLY.match(e.path)], "simulator routes without the console"

    unprotected = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        for endpoint in protected:
            response = await client.request(
                endpoint.method,
                concrete(endpoint.path),
                headers={"origin": BASE, "content-type": "application/json"},
                content=b"{}" if endpoint.method in ("POST", "PUT", "PATCH") else None,
            )
            if not refused(response):
                unprotected.append((endpoint.method, endpoint.path, response.status_code))
    assert unprotected == []


async def test_the_public_list_names_only_routes_that_exist(app_with_lifespan: FastAPI) -> None:
    paths = {endpoint.path for endpoint in walk(app_with_lifespan.routes)}
    assert paths >= HEALTH
    assert paths >= PUBLIC_PAGES
    assert {"/webhooks/wazzup/{secret}", "/webhooks/twilio", "/webhooks/twilio/status"} <= paths


async def test_public_pages_carry_no_data(app_with_lifespan: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_with_lifespan), base_url=BASE) as client:
        schema = (await client.get("/openapi.json")).json()
        login = await client.get("/admin/login")
    assert set(schema) >= {"openapi", "paths"}
    assert login.status_code == 200
    assert "password" in login.text.lower()


def test_development_only_routes_exist_only_with_the_console_provider(settings: Settings) -> None:
    production_like = create_app(settings.model_copy(update={"console_enabled": False}))
    development = create_app(settings.model_copy(update={"console_enabled": True}))
    assert not [e for e in walk(production_like.routes) if CONSOLE_ONLY.match(e.path)]
    assert [e for e in walk(development.routes) if CONSOLE_ONLY.match(e.path)]
    # Off by default in production.
    auth = AuthSettings(api_token="p" * 32, admin_password="q" * 16, secret_key="r" * 32)
    production = Settings(
        salesbot_env="production",
        database_url="postgresql+asyncpg://x@/y",
        redis_url="redis://localhost",
        auth=auth,
        conversation=ConversationSettings(playbook_path="/etc/salesbot/playbook.yaml"),
    )
    assert production.console_provider_enabled is False
