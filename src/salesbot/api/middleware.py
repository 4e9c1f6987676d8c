"""A correct `Allow` header on 405 answers of the REST API (RFC 9110: every method the resource supports).

Starlette answers a wrong method with the methods of the *first* route whose path matches, so
`OPTIONS /api/v1/products/1` would say `Allow: GET` although PATCH works too.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AllowHeaderMiddleware:
    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.routes = [route for route in routes if isinstance(route, Route) and route.methods]

    def allowed(self, path: str) -> list[str]:
        methods: set[str] = set()
        for route in self.routes:
            if route.path_regex.match(path) and route.methods:
                methods |= route.methods
        return sorted(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.allowed(scope["path"])
                if methods:
                    MutableHeaders(scope=message)["allow"] = ", ".join(methods)
            await send(message)

        await self.app(scope, receive, send_with_allow)
