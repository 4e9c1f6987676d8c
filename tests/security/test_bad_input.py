"""Hostile input of every shape gets a clear 4xx (or is stored sanitised), never a 500, within bounded memory and
time: bodies larger than the limit (declared or streamed), bodies that trickle in byte by byte, invalid UTF-8,
and JSON nested deeper than any parser's recursion limit, on every route that reads a body.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from salesbot import app as app_module
from salesbot.app import MAX_REQUEST_BODY_BYTES, REQUEST_BODY_TIMEOUT_SECONDS, create_app
from salesbot.kit.body_timeout import BodyReadTimeoutMiddleware
from salesbot.messaging.twilio import compute_signature
from salesbot.models import Message
from salesbot.settings import Settings
from tests.fakes.pipeline import (
    PUBLIC_BASE_URL,
    TWILIO_TOKEN,
    WAZZUP_SECRET,
    Pipeline,
    pipeline_settings,
    twilio_params,
)
from tests.live import LiveStack

DEEP = b"[" * 200_000 + b"]" * 200_000  # 400 kB, under the size limit, far over any recursion limit
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


async def stored(pipeline: Pipeline) -> int:
    async with pipeline.resources.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


def authorized(pipeline: Pipeline) -> dict[str, str]:
    token = pipeline.resources.settings.auth.api_token.get_secret_value()
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


# --- deeply nested JSON -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
async def test_deeply_nested_json_is_a_400_on_json_webhooks(pipeline: Pipeline, body: bytes) -> None:
    wazzup = await pipeline.wazzup(body)
    console = await pipeline.client.post(
        "/webhooks/console", content=body, headers={"content-type": "application/json"}
    )
    assert (wazzup.status_code, console.status_code) == (400, 400)
    assert wazzup.json()["detail"].startswith("body is not valid JSON")
    assert await stored(pipeline) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/api/v1/conversations/1"), ("POST", "/api/v1/conversations/1/messages"), ("POST", "/api/v1/products")],
)
async def test_deeply_nested_json_is_a_4xx_on_the_api(pipeline: Pipeline, method: str, path: str) -> None:
    response = await pipeline.client.request(method, path, content=DEEP, headers=authorized(pipeline))
    assert 400 <= response.status_code < 500


# --- invalid UTF-8 ------------------------------------------------------------------------------------------------


async def test_invalid_utf8_is_refused_or_sanitised_never_a_500(pipeline: Pipeline) -> None:
    invalid = b'{"messages": [{"messageId": "m-\xff", "chatId": "7999\xc3\x28", "text": "\xed\xa0\x80"}]}'
    assert (await pipeline.wazzup(invalid)).status_code == 400
    console = b'{"phone": "+15550100", "text": "caf\xe9"}'
    response = await pipeline.client.post("/webhooks/console", content=console)
    assert response.status_code == 400
    # A Twilio form carrying percent-encoded invalid UTF-8: decoded with replacement characters, signed as such.
    raw = "MessageSid=SMbad0001&From=whatsapp%3A%2B14155550123&To=whatsapp%3A%2B14155238886&Body=caf%E9%FF"
    from urllib.parse import parse_qsl

    params = parse_qsl(raw, keep_blank_values=True)
    signature = compute_signature(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio", params)
    response = await pipeline.twilio(params, signature=signature, body=raw.encode())
    assert response.status_code == 200
    [message] = [m for m in await pipeline.messages() if m.provider_message_id == "SMbad0001"]
    assert message.text == "caf\ufffd\ufffd"
    # Raw bytes that are not UTF-8 at all in a form body.
    response = await pipeline.twilio([], signature="x", body=b"Body=\xff\xfe&MessageSid=SM1")
    assert response.status_code in (400, 403)
    for method, path in [("PATCH", "/api/v1/conversations/1"), ("POST", "/api/v1/products")]:
        response = await pipeline.client.request(method, path, content=b'{"x": "\xff"}', headers=authorized(pipeline))
        assert 400 <= response.status_code < 500
    response = await pipeline.client.get("/api/v1/conversations?phone=%FF%FE", headers=authorized(pipeline))
    assert response.status_code == 422


async def test_invalid_utf8_login_form_is_not_a_server_error(app_with_lifespan: object) -> None:
    transport = httpx.ASGITransport(app=app_with_lifespan)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/admin/login",
            content=b"username=\xff\xfe&password=%FF%C3%28",
            headers={"content-type": "application/x-www-form-urlencoded", "origin": "http://testserver"},
        )
    assert response.status_code < 500


# --- oversize bodies ----------------------------------------------------------------------------------------------

BODY_ROUTES = [
    ("POST", f"/webhooks/wazzup/{WAZZUP_SECRET}"),
    ("POST", "/webhooks/twilio"),
    ("POST", "/webhooks/twilio/status"),
    ("POST", "/webhooks/console"),
    ("PATCH", "/api/v1/conversations/1"),
    ("POST", "/api/v1/conversations/1/messages"),
    ("POST", "/api/v1/products"),
    ("PATCH", "/api/v1/products/1"),
    ("POST", "/admin/login"),
    ("POST", "/admin/conversation/1/send"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_body_over_the_limit_is_413_on_every_route_and_is_not_read(
    pipeline: Pipeline, method: str, path: str
) -> None:
    chunk = b"x" * (64 * 1024)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(320):  # 20 MiB if the server kept reading
            sent += len(chunk)
            yield chunk

    headers = {**authorized(pipeline), "origin": PUBLIC_BASE_URL}
    declared = await pipeline.client.request(method, path, content=b"x" * (2 * MAX_REQUEST_BODY_BYTES), headers=headers)
    streamed = await pipeline.client.request(method, path, content=endless(), headers=headers)
    assert declared.status_code == 413
    if path.startswith("/admin/"):
        # Refused unread either way: the login check redirects first, or the admin's form parser reports the cut
        # stream as a bad form.
        assert streamed.status_code in (302, 303, 400, 413)
    else:
        assert streamed.status_code == 413
    # The server stopped pulling the stream right after the limit: memory stays bounded by it.
    assert sent <= MAX_REQUEST_BODY_BYTES + 2 * len(chunk)


# --- slow clients -----------------------------------------------------------------------------------------------


def test_the_app_bounds_how_long_a_body_may_take() -> None:
    app = create_app(Settings(salesbot_env="test"))
    timeouts = [m.kwargs for m in app.user_middleware if m.cls is BodyReadTimeoutMiddleware]
    assert timeouts == [{"seconds": REQUEST_BODY_TIMEOUT_SECONDS}]


@pytest.fixture
def live_app(database_url: str, redis_server: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveStack]:
    # The real app on a real port, with a short body deadline so the test does not wait 30 s.
    monkeypatch.setattr(app_module, "REQUEST_BODY_TIMEOUT_SECONDS", 1.0)
    settings = pipeline_settings(database_url, redis_server.url)  # type: ignore[attr-defined]
    stack = LiveStack(settings, with_worker=False).start()
    yield stack
    stack.stop()


@pytest.mark.usefixtures("clean_db")
async def test_a_body_trickling_in_byte_by_byte_gets_408_and_does_not_block_others(live_app: LiveStack) -> None:
    body = json.dumps({"messages": []}).encode() + b" " * 200
    head = (
        f"POST /webhooks/wazzup/{WAZZUP_SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    def slowloris() -> tuple[bytes, int]:
        with socket.create_connection(("127.0.0.1", live_app.port), timeout=10) as sock:
            sock.sendall(head)
            sock.setblocking(False)
            sent = 0
            deadline = time.monotonic() + 15
            while sent < len(body) and time.monotonic() < deadline:
                try:
                    answer = sock.recv(4096)
                    if answer:
                        return answer, sent
                except BlockingIOError:
                    pass
                sock.send(body[sent : sent + 1])
                sent += 1
                time.sleep(0.05)
            sock.setblocking(True)
            return sock.recv(4096), sent

    task = asyncio.create_task(asyncio.to_thread(slowloris))
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(base_url=live_app.url) as client:
        health = await client.get("/healthz")
    answer, sent = await task
    assert health.status_code == 200
    assert answer.startswith(b"HTTP/1.1 408")
    assert sent < len(body), "the server waited for the whole trickled body"


async def test_a_body_that_arrives_in_time_is_unaffected(live_app: LiveStack) -> None:
    params = twilio_params("whatsapp:+14155550123", "hello")
    signature = compute_signature(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio", params)
    async with httpx.AsyncClient(base_url=live_app.url) as client:
        response = await client.post(
            "/webhooks/twilio",
            content=urlencode(params),
            headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
        )
    assert response.status_code == 200
