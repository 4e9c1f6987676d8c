"""Receivers of alerts: a webhook endpoint that verifies the HMAC signature like a team's integration would, and
a real SMTP server (aiosmtpd) that records the mail it accepts. Both record what they were sent."""

from __future__ import annotations

import contextlib
import email
import hashlib
import hmac
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message as MailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from starlette.types import Receive, Scope, Send

from tests.fakes.server import local_server

WEBHOOK_SECRET = "alert-webhook-secret-5c1d7e9a3b"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    """Answers 401 to a bad signature, the scripted statuses first, then 200; `accepted` drops repeats of a
    delivery id the way a receiver that honours `X-Salesbot-Delivery` does."""

    secret: str = WEBHOOK_SECRET
    script: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("x-salesbot-signature", ""), expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        verified = self.verify(headers, body)
        self.received.append(Received(headers, body, verified))
        if not verified:
            status = 401
        elif self.script:
            status = self.script.popleft()
        else:
            status = 200
            self.accepted.setdefault(headers.get("x-salesbot-delivery", ""), json.loads(body))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"no"})


@contextlib.asynccontextmanager
async def webhook_receiver(receiver: WebhookReceiver | None = None) -> AsyncIterator[WebhookReceiver]:
    fake = receiver or WebhookReceiver()
    async with local_server(fake) as port:
        fake.url = f"http://127.0.0.1:{port}/hooks/salesbot"
        yield fake


SMTP_USER = "alerts@falcon-office.example"
SMTP_PASSWORD = "smtp-password-9f2c"


@dataclass
class MailHandler:
    """Records accepted mail; `script` holds SMTP replies given to DATA first (e.g. a 451 temporary failure)."""

    script: deque[str] = field(default_factory=deque)
    messages: list[MailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.script:
            return self.script.popleft()
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append(email.message_from_bytes(content))
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def _authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def smtp_server(handler: MailHandler | None = None) -> Iterator[tuple[MailHandler, int]]:
    """A real SMTP server on 127.0.0.1 (AUTH LOGIN/PLAIN allowed without TLS, as on a local relay)."""
    mail = handler or MailHandler()
    controller = Controller(
        mail,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield mail, controller.port
    finally:
        controller.stop()
