"""A recording fake of the Telegram Bot API's `sendMessage`, served over real HTTP on 127.0.0.1.

It answers like the real Bot API (envelopes from tests/fixtures/telegram): `{"ok": true, "result": Message}` for a
known token and chat, 401 for another token, 400 "chat not found" for another chat, 400 for an empty or too long
text, and whatever is queued in `script` first (429 with `parameters.retry_after`, 5xx). Like the real API it has no
idempotency key: every accepted request is a new message.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.fakes.server import local_server

FIXTURES = Path(__file__).parents[1] / "fixtures" / "telegram"
BOT_TOKEN = "7034182956:AAHk3c9Vb2mQe-1xZ0fake_token_for_tests"
CHAT_ID = "-1002145512376"
MAX_TEXT = 4096

Reply = tuple[int, dict[str, Any]]


def fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return body


def too_many_requests(retry_after: int) -> Reply:
    body = fixture("too_many_requests")
    body["description"] = f"Too Many Requests: retry after {retry_after}"
    body["parameters"]["retry_after"] = retry_after
    return 429, body


def server_error() -> Reply:
    return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}


@dataclass
class FakeTelegramApi:
    token: str = BOT_TOKEN
    chat_id: str = CHAT_ID
    # Answers given (in order) before the normal behaviour: a scripted 429 or 5xx.
    script: deque[Reply] = field(default_factory=deque)
    # Every request received: (path, JSON body).
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The messages the chat now holds.
    delivered: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def _answer(self, path: str, body: dict[str, Any]) -> Reply:
        if path == f"/bot{self.token}/getMe":
            return 200, fixture("get_me_ok")
        if path != f"/bot{self.token}/sendMessage":
            return 401, fixture("unauthorized") if path.startswith("/bot") else {"ok": False, "error_code": 404}
        if self.script:
            return self.script.popleft()
        if str(body.get("chat_id")) != self.chat_id:
            return 400, fixture("chat_not_found")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(text) > MAX_TEXT:
            return 400, fixture("message_too_long")
        answer = fixture("send_message_ok")
        message = answer["result"]
        message["message_id"] = 4711 + len(self.delivered)
        message["date"] = int(time.time())
        message["chat"]["id"] = int(self.chat_id)
        message["text"] = text
        self.delivered.append(message)
        return 200, answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        self.requests.append((scope["path"], body))
        status, answer = self._answer(scope["path"], body if isinstance(body, dict) else {})
        payload = json.dumps(answer).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": payload})


@asynccontextmanager
async def telegram_server(api: FakeTelegramApi | None = None) -> AsyncIterator[FakeTelegramApi]:
    fake = api or FakeTelegramApi()
    async with local_server(fake) as port:
        fake.base_url = f"http://127.0.0.1:{port}"
        yield fake
