"""Fakes of the places customer files come from and go to: the providers' media stores (each with the credentials
the real one requires) and an OpenAI-compatible transcription endpoint recording the multipart it received.

They are ASGI apps (Starlette parses the multipart for real); `route` puts one behind respx for a host, so the
worker's HTTP client reaches it in-process (redirects and all) while every other request stays refused.
"""

from __future__ import annotations

import base64
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

# The first bytes of an Ogg/Opus voice note ("OggS" page header, then "OpusHead"), padded to a realistic size.
OGG_VOICE = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + secrets.token_bytes(4000)
JPEG_PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + secrets.token_bytes(3000) + b"\xff\xd9"


def route(router: respx.MockRouter, base_url: str, app: Any) -> None:
    """Serve `app` for every request whose URL starts with `base_url`."""
    transport = httpx.ASGITransport(app=app)

    async def side_effect(request: httpx.Request) -> httpx.Response:
        response = await transport.handle_async_request(request)
        body = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    router.route(url__startswith=base_url).mock(side_effect=side_effect)


@dataclass
class StoredFile:
    data: bytes
    content_type: str


@dataclass
class FakeMediaStore:
    """A file store. `basic` = (user, password) or `bearer` = token makes it refuse requests without them (401),
    like Twilio's media URLs and Meta's lookaside host; `redirect_to` answers an authorised request with a 307 to
    that base URL + path, where the file is served without credentials (Twilio's CDN)."""

    files: dict[str, StoredFile] = field(default_factory=dict)
    basic: tuple[str, str] | None = None
    bearer: str | None = None
    redirect_to: str | None = None
    # (path, Authorization header or None) of every request.
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{path:path}", self._serve, methods=["GET"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def _authorised(self, header: str | None) -> bool:
        if self.basic is not None:
            expected = "Basic " + base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return header == expected
        if self.bearer is not None:
            return header == f"Bearer {self.bearer}"
        return True

    async def _serve(self, request: Request) -> Response:
        path = request.url.path
        header = request.headers.get("authorization")
        self.requests.append((path, header))
        if not self._authorised(header):
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        stored = self.files.get(path)
        if stored is None:
            return JSONResponse({"message": "not found"}, status_code=404)
        if self.redirect_to is not None:
            return RedirectResponse(self.redirect_to + path, status_code=307)
        return Response(stored.data, media_type=stored.content_type)


@dataclass(frozen=True)
class Received:
    authorization: str | None
    model: str | None
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class FakeTranscriber:
    """`POST /v1/audio/transcriptions` as OpenAI answers it (`{"text": ...}`, plus `language` when set)."""

    api_key: str
    text: str = "Hello, do you have the X100 drill in stock?"
    language: str | None = "english"
    # Scripted statuses answered before the transcript (500, 503...); `outage` answers every request with one.
    fail_next: deque[int] = field(default_factory=deque)
    outage: int | None = None
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"])])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def _transcribe(self, request: Request) -> Response:
        form = await request.form()
        upload, model = form.get("file"), form.get("model")
        data = await upload.read() if isinstance(upload, UploadFile) else b""
        self.received.append(
            Received(
                authorization=request.headers.get("authorization"),
                model=model if isinstance(model, str) else None,
                filename=upload.filename if isinstance(upload, UploadFile) else None,
                content_type=upload.content_type if isinstance(upload, UploadFile) else None,
                data=data,
            )
        )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}, 401
            )
        status = self.fail_next.popleft() if self.fail_next else self.outage
        if status is not None:
            return JSONResponse({"error": {"message": "The server had an error", "type": "server_error"}}, status)
        if not isinstance(upload, UploadFile) or not data or not isinstance(model, str):
            return JSONResponse({"error": {"message": "file and model are required"}}, 400)
        body: dict[str, Any] = {"text": self.text}
        if self.language is not None:
            body["language"] = self.language
        return JSONResponse(body)
