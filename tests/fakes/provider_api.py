"""Recording fakes of the Wazzup and Twilio HTTP APIs, served through respx (in-process tests) or a real local
HTTP server (tests with worker subprocesses).

They behave like the real services where the outbox depends on it: Wazzup refuses a repeated `crmMessageId` with
`REPEATED_CRM_MESSAGE_ID` for 60 seconds only and then sends it again as a new message (its clock is injectable, so
a test can move past the window without waiting); Twilio has no idempotency key and lists the messages it
accepted, a template send under the template's rendered text. Scripted failures (`fail_next`) come first;
`outage` answers every send with one reply while it is set (a provider down for a period, or rate limiting);
`lose_answers` accepts the next sends and loses their answers (the client sees a read timeout).
The HTTP server can also stall accepted sends and echo Wazzup sends back to the bot's webhook.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import respx
from starlette.types import Receive, Scope, Send

from tests.fakes.server import local_server, serve_in_thread

WAZZUP_BASE = "https://wazzup.test/v3"
TWILIO_BASE = "https://twilio.test"


@dataclass(frozen=True)
class Sent:
    """One message a fake provider accepted."""

    chat_id: str
    text: str | None
    provider_message_id: str
    key: str | None = None
    template: str | None = None
    # When the fake accepted it (time.time()).
    at: float = 0.0
    # The file's URL of a media message (Wazzup `contentUri`, Twilio `MediaUrl`, Meta `{kind}.link`).
    media: str | None = None
    # Meta: the message type (text, image, document...) and a document's file name.
    kind: str | None = None
    filename: str | None = None


Reply = tuple[int, dict[str, Any]]
# A scripted failure that never reaches HTTP: the connection is refused.
NETWORK_ERROR: Reply = (0, {})
# The provider took the message but its answer never reaches the client (read timeout).
ANSWER_LOST: Reply = (-1, {})
# Wazzup's documented duplicate window for `crmMessageId`.
WAZZUP_DUPLICATE_WINDOW_SECONDS = 60.0


@dataclass
class FakeClock:
    """A clock a test moves by hand (`advance`), for fakes that remember things for a while."""

    now: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeWazzupApi:
    api_key: str
    sent: list[Sent] = field(default_factory=list)
    calls: int = 0
    fail_next: deque[Reply] = field(default_factory=deque)
    # While set, every send is answered with this (after `fail_next`); counted in `outage_answers`.
    outage: Reply | None = None
    outage_answers: int = 0
    # Sends refused as a repeated crmMessageId (a resend of a message that already went out).
    repeats: int = 0
    # Sends whose crmMessageId was already used, but longer ago than the window: sent again, a duplicate.
    duplicates: int = 0
    # The next this-many accepted sends lose their answer (the client sees a read timeout).
    lose_answers: int = 0
    duplicate_window: float = WAZZUP_DUPLICATE_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    # Awaited after a send was accepted, before it is answered (in-process tests: something happens mid-send).
    on_accept: Callable[[Sent], Awaitable[None]] | None = None
    # crmMessageId -> when Wazzup first accepted it (by `clock`).
    _keys: dict[str, float] = field(default_factory=dict)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.calls += 1
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "UNAUTHORIZED", "description": "bad key"}
        if method != "POST" or not path.endswith("/message"):
            return 404, {}
        payload = json.loads(body)
        if self.fail_next:
            return self.fail_next.popleft()
        if self.outage is not None:
            self.outage_answers += 1
            return self.outage
        if payload.get("text") and payload.get("contentUri"):
            # Wazzup documents `text` and `contentUri` as mutually exclusive.
            return 400, {
                "status": 400,
                "requestId": uuid.uuid4().hex,
                "error": "VALIDATION_ERROR",
                "description": "text and contentUri cannot be sent together",
                "data": {"fields": ["text", "contentUri"]},
            }
        key = payload.get("crmMessageId")
        now = self.clock()
        first = self._keys.get(key) if key is not None else None
        if first is not None and now - first < self.duplicate_window:
            self.repeats += 1
            return 400, {
                "status": 400,
                "requestId": uuid.uuid4().hex,
                "error": "REPEATED_CRM_MESSAGE_ID",
                "description": "You have already sent message with same crmMessageId",
                "data": {"crmMessageId": key},
            }
        if first is not None:
            self.duplicates += 1
        message_id = str(uuid.uuid4())
        if key is not None:
            self._keys[key] = now
        self.sent.append(
            Sent(
                chat_id=payload["chatId"],
                text=payload.get("text"),
                provider_message_id=message_id,
                key=key,
                template=payload.get("templateId"),
                at=time.time(),
                media=payload.get("contentUri"),
            )
        )
        if self.lose_answers > 0:
            self.lose_answers -= 1
            return ANSWER_LOST
        return 201, {"messageId": message_id, "chatId": payload["chatId"]}


@dataclass
class FakeTwilioApi:
    account_sid: str
    auth_token: str
    sent: list[Sent] = field(default_factory=list)
    calls: int = 0
    posts: int = 0
    fail_next: deque[Reply] = field(default_factory=deque)
    # While set, every message creation is answered with this (after `fail_next`).
    outage: Reply | None = None
    outage_answers: int = 0
    # Sids to hand out next (a test can know a message's sid before it is sent).
    next_sids: deque[str] = field(default_factory=deque)
    # What Twilio lists as the body of a message sent from a content template (`ContentSid`).
    template_text: str = "Hello! We have news about your request. Reply to continue the conversation."
    _records: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes, query: str = "") -> Reply:
        self.calls += 1
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if not path.endswith(f"/Accounts/{self.account_sid}/Messages.json"):
            return 404, {"code": 20404, "message": "not found", "status": 404}
        if method == "GET":
            params = dict(parse_qsl(query))
            found = [
                record
                for record in reversed(self._records)
                if record["to"] == params.get("To") and record["from"] == params.get("From")
            ]
            return 200, {"messages": found}
        self.posts += 1
        if self.fail_next:
            return self.fail_next.popleft()
        if self.outage is not None:
            self.outage_answers += 1
            return self.outage
        form = dict(parse_qsl(body.decode()))
        sid = self.next_sids.popleft() if self.next_sids else "SM" + uuid.uuid4().hex
        record = {
            "sid": sid,
            "to": form["To"],
            "from": form["From"],
            "body": self.template_text if form.get("ContentSid") else form.get("Body", ""),
            "status": "queued",
            "date_created": format_datetime(datetime.now(UTC)),
        }
        self._records.append(record)
        self.sent.append(
            Sent(
                chat_id=form["To"],
                text=form.get("Body"),
                provider_message_id=sid,
                template=form.get("ContentSid"),
                at=time.time(),
                media=form.get("MediaUrl"),
            )
        )
        return 201, {**record, "direction": "outbound-api", "num_segments": "1", "error_code": None}


@contextlib.contextmanager
def mocked(wazzup: FakeWazzupApi, twilio: FakeTwilioApi) -> Any:
    """respx routes for both fakes; any other outbound HTTP request fails the test."""

    def respond(request: httpx.Request, reply: Reply) -> httpx.Response:
        status, payload = reply
        if status == 0:
            raise httpx.ConnectError("connection refused (scripted)", request=request)
        if status == ANSWER_LOST[0]:
            raise httpx.ReadTimeout("the provider took the message, its answer was lost (scripted)", request=request)
        return httpx.Response(status, json=payload)

    async def wazzup_side_effect(request: httpx.Request) -> httpx.Response:
        reply = wazzup.handle(request.method, request.url.path, dict(request.headers), request.content)
        if reply[0] in (201, ANSWER_LOST[0]) and wazzup.on_accept is not None:
            await wazzup.on_accept(wazzup.sent[-1])
        return respond(request, reply)

    def twilio_side_effect(request: httpx.Request) -> httpx.Response:
        reply = twilio.handle(
            request.method, request.url.path, dict(request.headers), request.content, request.url.query.decode()
        )
        return respond(request, reply)

    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.route(url__startswith=WAZZUP_BASE).mock(side_effect=wazzup_side_effect)
        router.route(url__startswith=TWILIO_BASE).mock(side_effect=twilio_side_effect)
        yield router


@dataclass
class FakeProviderServer:
    """Both fakes behind a real HTTP server on 127.0.0.1 (for worker subprocesses).

    `hold_after_accept = n` makes the next n accepted sends hang after being recorded, like a provider that
    took the message but whose answer never arrives (the worker is killed while waiting for it).
    `stall_after_accept = s` answers every accepted send only after `s` seconds (a slow provider; a worker
    killed meanwhile never learns that the message went out).
    `wazzup_echo_url` makes the fake behave like a Wazzup account that reports API sends back: each accepted
    Wazzup send is echoed to that webhook URL as an `isEcho: true` message before the send call is answered
    (the race the outbox's echo matching exists for), then reported `delivered` in `statuses[]`; chats in
    `no_echo_chats` are not echoed (whether Wazzup echoes API sends is not documented either way).
    `silent_until` (a `time.monotonic()` instant): Wazzup takes every request that arrives before it as usual
    but answers none of them until then (a provider that hangs for longer than its duplicate window).

    Serve it on the test's event loop (`serving()`) or on its own loop in a thread (`in_thread()`), so a busy
    test loop (a load generator) does not delay the provider's answers or its recorded arrival times.
    """

    wazzup: FakeWazzupApi
    twilio: FakeTwilioApi
    hold_after_accept: int = 0
    # Sends recorded and left unanswered so far.
    held: int = 0
    stall_after_accept: float = 0.0
    wazzup_echo_url: str | None = None
    no_echo_chats: set[str] = field(default_factory=set)
    silent_until: float = 0.0
    # Echo and status webhooks the bot answered 200 / otherwise.
    echoes_posted: int = 0
    statuses_posted: int = 0
    echo_failures: int = 0
    port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _http: httpx.AsyncClient | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def wazzup_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def twilio_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path, query = scope["path"], scope["query_string"].decode()
        wazzup = path.startswith("/v3")
        if wazzup:
            status, payload = self.wazzup.handle(scope["method"], path, headers, body)
        else:
            status, payload = self.twilio.handle(scope["method"], path, headers, body, query)
        lost = status == ANSWER_LOST[0]
        if lost:
            status, payload = 201, {"messageId": self.wazzup.sent[-1].provider_message_id}
        accepted = status in (200, 201) and scope["method"] == "POST"
        echo = (
            bool(accepted and wazzup and self.wazzup_echo_url)
            and json.loads(body).get("chatId") not in self.no_echo_chats
        )
        if echo:
            await self._echo(json.loads(body), str(payload.get("messageId")))
        if wazzup and time.monotonic() < self.silent_until:
            # The client gives up long before this (its read timeout); the answer goes nowhere.
            await asyncio.sleep(self.silent_until - time.monotonic())
        if accepted and (lost or self.hold_after_accept > 0):
            self.hold_after_accept -= 0 if lost else 1
            self.held += 1
            # No answer while the client waits; the client is killed meanwhile, the server stops eventually.
            await self._release.wait()
            status, payload, echo = 503, {"error": "SERVER_STOPPING"}, False
        elif accepted and self.stall_after_accept > 0:
            await asyncio.sleep(self.stall_after_accept)
        data = json.dumps(payload).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": data})
        if echo:
            task = asyncio.create_task(self._delivered(str(payload.get("messageId"))))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _post_webhook(self, body: dict[str, Any]) -> bool:
        assert self._http is not None
        assert self.wazzup_echo_url is not None
        try:
            response = await self._http.post(self.wazzup_echo_url, json=body)
        except httpx.HTTPError:
            self.echo_failures += 1
            return False
        if response.status_code != 200:
            self.echo_failures += 1
        return response.status_code == 200

    async def _echo(self, request: dict[str, Any], message_id: str) -> None:
        echo = {
            "messageId": message_id,
            "dateTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "channelId": request.get("channelId"),
            "chatType": request.get("chatType", "whatsapp"),
            "chatId": request.get("chatId"),
            # A template send comes back as a WABA template message.
            "type": "wapi_template" if request.get("templateId") else "text",
            "isEcho": True,
            "status": "sent",
            "text": request.get("text", ""),
            "contact": {"name": request.get("chatId")},
        }
        if await self._post_webhook({"messages": [echo]}):
            self.echoes_posted += 1

    async def _delivered(self, message_id: str) -> None:
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        status = {"messageId": message_id, "timestamp": timestamp, "status": "delivered"}
        if await self._post_webhook({"statuses": [status]}):
            self.statuses_posted += 1

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeProviderServer]:
        async with local_server(self) as port:
            self.port = port
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
            try:
                yield self
            finally:
                self._release.set()
                for pending in list(self._background):
                    pending.cancel()
                await self._http.aclose()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeProviderServer]:
        """`serving()` on its own event loop in a daemon thread; stops (and joins) on exit."""
        with serve_in_thread(self.serving) as server:
            yield server
