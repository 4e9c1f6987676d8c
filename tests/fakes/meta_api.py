"""A recording fake of Meta's Graph API `POST /{version}/{phone_number_id}/messages`, in-process (respx) or as a
real local HTTP server that also sends the signed status webhooks Meta sends after a message is accepted.

Like the real API it has no idempotency key: every accepted request is a new message with a new wamid, whatever
its `biz_opaque_callback_data`. Errors come in Graph's envelope with Meta's documented codes and texts.
`lose_answer_next = n` accepts the next n messages and then drops the answer (the sender never learns the wamid).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx
from starlette.types import Receive, Scope, Send

from salesbot.messaging.meta import compute_signature
from tests.fakes.provider_api import NETWORK_ERROR, Reply, Sent
from tests.fakes.server import local_server, serve_in_thread

META_BASE = "https://graph.meta.test"
META_VERSION = "v21.0"
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"
MAX_TEXT = 4096

# Meta's documented error texts (title, details) for the codes the outbox branches on.
ERRORS: dict[int, tuple[str, str]] = {
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    131026: ("Message Undeliverable", "Unable to deliver message."),
    131050: (
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp "
        "from your business",
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp "
        "from your business",
    ),
    130429: (
        "Rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number in a short "
        "period of time",
    ),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number to the same "
        "phone number in a short period of time.",
    ),
    80007: ("Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131009: ("Parameter value is not valid", "Parameter value is not valid"),
    100: ("Invalid parameter", "Invalid parameter"),
    190: ("Error validating access token: Session has expired", "Error validating access token"),
}


def graph_error(code: int, *, status: int = 400, details: str | None = None) -> Reply:
    """A Graph API error answer as Meta sends it."""
    title, default_details = ERRORS.get(code, ("Unknown error", "Unknown error"))
    return status, {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or default_details},
            "fbtrace_id": "A" + base64.b64encode(uuid.uuid4().bytes).decode()[:22].replace("/", "_"),
        }
    }


def new_wamid() -> str:
    return "wamid.HBgL" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:8]).decode().rstrip("=")


@dataclass
class FakeMetaApi:
    access_token: str
    phone_number_id: str
    version: str = META_VERSION
    sent: list[Sent] = field(default_factory=list)
    # Every JSON body POSTed to the messages endpoint, accepted or not.
    requests: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    fail_next: deque[Reply] = field(default_factory=deque)
    outage: Reply | None = None
    lose_answer_next: int = 0
    # The sends accepted whose answer was dropped.
    lost: list[Sent] = field(default_factory=list)
    # Messages accepted, with their callback data, by wamid (what the status webhooks report).
    callback_data: dict[str, str | None] = field(default_factory=dict)
    # Customer media by media id: what `GET /{version}/{media_id}` answers (url, mime_type, sha256, file_size).
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    media_lookups: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/{self.version}/{self.phone_number_id}/messages"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[Reply, bool]:
        """(answer, whether the answer is lost after the message was accepted)."""
        self.calls += 1
        if headers.get("authorization") != f"Bearer {self.access_token}":
            return graph_error(190, status=401), False
        if method == "GET" and path.startswith(f"/{self.version}/") and path.count("/") == 2:
            media_id = path.rsplit("/", 1)[-1]
            self.media_lookups.append(media_id)
            if media_id not in self.media:
                return graph_error(
                    100, details=f"Unsupported get request. Object with ID '{media_id}' does not exist"
                ), False
            return (200, {"messaging_product": "whatsapp", **self.media[media_id], "id": media_id}), False
        if method != "POST" or path != self.path:
            return graph_error(100, details=f"Unsupported {method} request to {path}"), False
        try:
            payload = json.loads(body)
        except ValueError:
            return graph_error(100, details="Invalid JSON"), False
        self.requests.append(payload)
        if self.fail_next:
            return self.fail_next.popleft(), False
        if self.outage is not None:
            return self.outage, False
        problem = self._invalid(payload)
        if problem:
            return graph_error(100, details=problem), False
        to = payload.get("to") or payload.get("recipient")
        kind = payload["type"]
        content = payload[kind]
        wamid = new_wamid()
        text = content.get("body") if kind == "text" else content.get("caption")
        sent = Sent(
            chat_id=to,
            text=text,
            provider_message_id=wamid,
            key=payload.get("biz_opaque_callback_data"),
            template=content.get("name") if kind == "template" else None,
            at=time.time(),
            media=content.get("link"),
            kind=kind,
            filename=content.get("filename"),
        )
        self.sent.append(sent)
        self.callback_data[wamid] = payload.get("biz_opaque_callback_data")
        reply: Reply = (
            200,
            {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]},
        )
        if self.lose_answer_next > 0:
            self.lose_answer_next -= 1
            self.lost.append(sent)
            return reply, True
        return reply, False

    @staticmethod
    def _invalid(payload: dict[str, Any]) -> str | None:
        if payload.get("messaging_product") != "whatsapp":
            return "The parameter messaging_product is required."
        if not (payload.get("to") or payload.get("recipient")):
            return "The parameter to is required."
        kind = payload.get("type")
        if kind not in ("text", "image", "audio", "video", "document", "sticker", "template"):
            return f"Param type must be one of the supported types, got {kind!r}"
        content = payload.get(kind)
        if not isinstance(content, dict):
            return f"The parameter {kind} is required."
        if kind == "text" and not (isinstance(content.get("body"), str) and 0 < len(content["body"]) <= MAX_TEXT):
            return f"Param text['body'] must be at most {MAX_TEXT} characters long."
        if kind not in ("text", "template") and not content.get("link") and not content.get("id"):
            return f"Param {kind}['link'] is required."
        return None


def status_webhook(
    phone_number_id: str, wamid: str, status: str, recipient: str, callback_data: str | None
) -> dict[str, Any]:
    """A `statuses[]` webhook body in Meta's shape (as in tests/fixtures/meta/status_*.json)."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if status != "read":
        item["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id},
                            "statuses": [item],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


@contextlib.contextmanager
def mocked_meta(api: FakeMetaApi, router: respx.MockRouter | None = None) -> Iterator[respx.MockRouter]:
    """The fake behind respx (on `router`, or a new mock that refuses any other request)."""

    def side_effect(request: httpx.Request) -> httpx.Response:
        (status, payload), lost = api.handle(request.method, request.url.path, dict(request.headers), request.content)
        if status == NETWORK_ERROR[0]:
            raise httpx.ConnectError("connection refused (scripted)", request=request)
        if lost:
            raise httpx.ReadTimeout("answer lost after the message was accepted (scripted)", request=request)
        return httpx.Response(status, json=payload)

    if router is not None:
        router.route(url__startswith=META_BASE).mock(side_effect=side_effect)
        yield router
        return
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as own:
        own.route(url__startswith=META_BASE).mock(side_effect=side_effect)
        yield own


@dataclass
class FakeMetaServer:
    """The fake on a real HTTP server on 127.0.0.1. With `webhook_url` and `app_secret` it reports each accepted
    message to the bot like Meta: signed `sent`, `delivered` and `read` status webhooks, in that order."""

    api: FakeMetaApi
    webhook_url: str | None = None
    app_secret: str = ""
    statuses_posted: int = 0
    status_failures: int = 0
    port: int = 0
    _http: httpx.AsyncClient | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
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
        (status, payload), lost = self.api.handle(scope["method"], scope["path"], headers, body)
        accepted = status == 200
        if accepted and self.webhook_url:
            request = json.loads(body)
            wamid = payload["messages"][0]["id"]
            task = asyncio.create_task(
                self._report(
                    wamid, request.get("to") or request.get("recipient"), request.get("biz_opaque_callback_data")
                )
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if lost:
            # Accepted, but the connection drops before the answer.
            await send({"type": "http.response.start", "status": 500, "headers": []})
            raise ConnectionResetError("answer lost (scripted)")
        data = json.dumps(payload).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": data})

    async def post_webhook(self, body: dict[str, Any]) -> int:
        """POST a body to the bot's Meta webhook, signed with the app secret as Meta does."""
        assert self._http is not None
        assert self.webhook_url is not None
        raw = json.dumps(body).encode()
        response = await self._http.post(
            self.webhook_url,
            content=raw,
            headers={
                "content-type": "application/json",
                "x-hub-signature-256": compute_signature(self.app_secret, raw),
            },
        )
        return response.status_code

    async def _report(self, wamid: str, recipient: str, callback_data: str | None) -> None:
        for status in ("sent", "delivered", "read"):
            await asyncio.sleep(0.05)
            try:
                code = await self.post_webhook(
                    status_webhook(self.api.phone_number_id, wamid, status, recipient, callback_data)
                )
            except httpx.HTTPError:
                code = 0
            if code == 200:
                self.statuses_posted += 1
            else:
                self.status_failures += 1

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeMetaServer]:
        async with local_server(self) as port:
            self.port = port
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
            try:
                yield self
            finally:
                for pending in list(self._background):
                    pending.cancel()
                await self._http.aclose()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeMetaServer]:
        with serve_in_thread(self.serving, name="fake-meta") as server:
            yield server
