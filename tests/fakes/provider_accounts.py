"""Fakes of the provider account APIs that `salesbot check` and `salesbot webhooks register` call, on a real port
(Wazzup, Twilio and Meta's Graph API).

They behave like the services: a wrong key gets the provider's 401 body; Wazzup keeps ONE webhook address per
account and, before accepting a new one, POSTs `{"test": true}` to it and refuses the change unless that answers
200 (`testPostNotPassed`), as its documentation says (shared/reference/providers.md §1.5).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from tests.fakes.server import local_server, serve_in_thread

Reply = tuple[int, Any]


async def _body(receive: Receive) -> bytes:
    raw = b""
    while True:
        event = await receive()
        raw += event.get("body", b"")
        if not event.get("more_body"):
            return raw


async def _answer(send: Send, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


@dataclass
class FakeAccounts:
    wazzup_key: str
    twilio_sid: str
    twilio_token: str
    # GET /v3/channels as Wazzup answers it.
    channels: list[dict[str, Any]] = field(default_factory=list)
    webhook_uri: str | None = None
    twilio_status: str = "active"
    meta_token: str = ""
    meta_phone_number_id: str = ""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def wazzup_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def twilio_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def meta_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graph"

    def _meta(self, method: str, path: str, headers: dict[bytes, bytes]) -> Reply:
        if headers.get(b"authorization") != f"Bearer {self.meta_token}".encode():
            return 401, {
                "error": {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException",
                    "code": 190,
                    "fbtrace_id": "AbCdEfGhIjKlMnOp",
                }
            }
        if method == "GET" and path.endswith(f"/{self.meta_phone_number_id}"):
            return 200, {
                "verified_name": "Falcon Office Systems",
                "display_phone_number": "+971 4 555 0100",
                "quality_rating": "GREEN",
                "id": self.meta_phone_number_id,
            }
        return 400, {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100}}

    async def _wazzup(self, method: str, path: str, headers: dict[bytes, bytes], body: Any) -> Reply:
        if headers.get(b"authorization") != f"Bearer {self.wazzup_key}".encode():
            return 401, {"error": "unauthorized", "description": "Invalid API key"}
        if method == "GET" and path == "/v3/channels":
            return 200, self.channels
        if method == "GET" and path == "/v3/webhooks":
            return 200, {"webhooksUri": self.webhook_uri, "subscriptions": {"messagesAndStatuses": "true"}}
        if method == "PATCH" and path == "/v3/webhooks":
            uri = body.get("webhooksUri") if isinstance(body, dict) else None
            if not isinstance(uri, str) or not uri.startswith(("http://", "https://")) or len(uri) > 200:
                return 400, {"error": "uriNotValid", "description": "Provided URI is not valid URI"}
            async with httpx.AsyncClient(timeout=10) as client:
                try:
                    status = (await client.post(uri, json={"test": True})).status_code
                except httpx.HTTPError:
                    status = 0
            if status != 200:
                return 400, {
                    "error": "testPostNotPassed",
                    "description": "URI does not return 200 OK on test request",
                    "data": {"status": status},
                }
            self.webhook_uri = uri
            return 200, {"ok": True}
        return 404, {"error": "notFound", "description": path}

    def _twilio(self, method: str, path: str, headers: dict[bytes, bytes]) -> Reply:
        expected = base64.b64encode(f"{self.twilio_sid}:{self.twilio_token}".encode())
        if headers.get(b"authorization") != b"Basic " + expected:
            return 401, {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            }
        if method == "GET" and path == f"/2010-04-01/Accounts/{self.twilio_sid}.json":
            return 200, {
                "sid": self.twilio_sid,
                "friendly_name": "My first Twilio account",
                "status": self.twilio_status,
                "type": "Full",
                "uri": f"/2010-04-01/Accounts/{self.twilio_sid}.json",
            }
        return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await _body(receive)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        self.requests.append((method, path, body))
        if path.startswith("/v3/"):
            status, payload = await self._wazzup(method, path, headers, body)
        elif path.startswith("/graph/"):
            status, payload = self._meta(method, path, headers)
        else:
            status, payload = self._twilio(method, path, headers)
        await _answer(send, status, payload)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeAccounts]:
        async with local_server(self) as port:
            self.port = port
            yield self

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeAccounts]:
        with serve_in_thread(self.serving, name="fake-provider-accounts") as server:
            yield server
