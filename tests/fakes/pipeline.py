"""The message pipeline under test: the real app (webhooks), real PostgreSQL and Redis, a real arq worker, the
provider HTTP APIs faked at the HTTP boundary and a recording test double as the agent.

Test modules get it through the `pipeline` fixture (imported by the conftest of each pipeline test package).
Settings can be changed per test by parametrizing `pipeline_overrides` with `{"group": {"field": value}}`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from sqlalchemy import select

from salesbot.app import create_app
from salesbot.devstack import EmbeddedRedis
from salesbot.messaging.twilio import compute_signature
from salesbot.models import Conversation, Customer, Direction, Message
from salesbot.resources import Resources, open_resources
from salesbot.settings import (
    ConversationSettings,
    MetaSettings,
    OutboxSettings,
    Settings,
    TwilioSettings,
    WazzupSettings,
)
from tests.conftest import make_settings
from tests.fakes.meta_api import META_BASE, FakeMetaApi, mocked_meta
from tests.fakes.provider_api import TWILIO_BASE, WAZZUP_BASE, FakeTwilioApi, FakeWazzupApi, mocked
from tests.fakes.reply import RecordingReplyGenerator
from tests.fakes.worker import PipelineWorker

PUBLIC_BASE_URL = "https://bot.example.test"
WAZZUP_SECRET = "wz-hook-3f9c2b7e4d1a48c6a2e5b0d7c9f1e8a4"
WAZZUP_KEY = "33a817cbc1504bd5885574d8f0290cd3"
WAZZUP_CHANNEL = "b96a999e-06f5-4cac-8413-ba999993f981"
TWILIO_SID = "AC00000000000000000000000000000000"
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
TWILIO_FROM = "whatsapp:+14155238886"
META_TOKEN = "EAAJmeta-test-access-token-0123456789"
META_PHONE_NUMBER_ID = "106540352242922"
META_APP_SECRET = "meta-test-app-secret-0123456789abcdef"
META_VERIFY_TOKEN = "meta-test-verify-token-7f3a"


def pipeline_settings(
    database_url: str, redis_url: str, overrides: dict[str, dict[str, Any]] | None = None
) -> Settings:
    groups: dict[str, dict[str, Any]] = {
        "conversation": {"debounce_seconds": 0.2, "debounce_max_seconds": 2.0},
        "outbox": {"pacing_seconds": 0, "retry_base_seconds": 0.05, "retry_max_seconds": 0.4, "max_send_attempts": 4},
        "wazzup": {
            "api_url": WAZZUP_BASE,
            "api_key": WAZZUP_KEY,
            "channel_id": WAZZUP_CHANNEL,
            "webhook_secret": WAZZUP_SECRET,
        },
        "twilio": {
            "api_url": TWILIO_BASE,
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "whatsapp_from": TWILIO_FROM,
        },
        "meta": {
            "api_url": META_BASE,
            "access_token": META_TOKEN,
            "phone_number_id": META_PHONE_NUMBER_ID,
            "app_secret": META_APP_SECRET,
            "verify_token": META_VERIFY_TOKEN,
        },
        "root": {"console_enabled": True, "worker_job_timeout_seconds": 20, "public_base_url": PUBLIC_BASE_URL},
    }
    for group, values in (overrides or {}).items():
        groups.setdefault(group, {}).update(values)
    return make_settings(
        database_url,
        redis_url,
        conversation=ConversationSettings(**groups["conversation"]),
        outbox=OutboxSettings(**groups["outbox"]),
        wazzup=WazzupSettings(**groups["wazzup"]),
        twilio=TwilioSettings(**groups["twilio"]),
        meta=MetaSettings(**groups["meta"]),
        **groups["root"],
    )


def wazzup_message(chat_id: str, text: str, *, message_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "dateTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "channelId": WAZZUP_CHANNEL,
        "chatType": "whatsapp",
        "chatId": chat_id,
        "type": "text",
        "isEcho": False,
        "status": "inbound",
        "contact": {"name": "Test Customer"},
        "text": text,
        **extra,
    }


def twilio_params(sender: str, text: str, *, sid: str | None = None) -> list[tuple[str, str]]:
    sid = sid or "SM" + uuid.uuid4().hex
    return [
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ProfileName", "Maria"),
        ("MessageType", "text"),
        ("SmsSid", sid),
        ("WaId", sender.removeprefix("whatsapp:+")),
        ("SmsStatus", "received"),
        ("Body", text),
        ("To", TWILIO_FROM),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", TWILIO_SID),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]


@dataclass
class Pipeline:
    resources: Resources
    client: httpx.AsyncClient
    generator: RecordingReplyGenerator
    worker: PipelineWorker
    wazzup_api: FakeWazzupApi
    twilio_api: FakeTwilioApi
    meta_api: FakeMetaApi
    # The respx router faking every outbound HTTP request: tests add routes for other hosts (media stores).
    router: respx.MockRouter | None = None

    @property
    def redis(self) -> ArqRedis:
        return self.resources.redis

    async def wazzup(self, payload: dict[str, Any] | bytes, *, secret: str = WAZZUP_SECRET) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return await self.client.post(
            f"/webhooks/wazzup/{secret}", content=body, headers={"content-type": "application/json; charset-utf-8"}
        )

    async def wazzup_text(self, chat_id: str, text: str, **kwargs: Any) -> httpx.Response:
        return await self.wazzup({"messages": [wazzup_message(chat_id, text, **kwargs)]})

    async def twilio(
        self,
        params: list[tuple[str, str]],
        *,
        path: str = "/webhooks/twilio",
        signature: str | None = "valid",
        body: bytes | None = None,
    ) -> httpx.Response:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if signature == "valid":
            headers["x-twilio-signature"] = compute_signature(TWILIO_TOKEN, PUBLIC_BASE_URL + path, params)
        elif signature is not None:
            headers["x-twilio-signature"] = signature
        return await self.client.post(path, content=body if body is not None else urlencode(params), headers=headers)

    async def console(self, phone: str, text: str, **extra: Any) -> httpx.Response:
        return await self.client.post("/webhooks/console", json={"phone": phone, "text": text, **extra})

    async def messages(self, *, direction: Direction | None = None) -> list[Message]:
        query = select(Message).order_by(Message.id)
        if direction is not None:
            query = query.where(Message.direction == direction)
        async with self.resources.sessionmaker() as session:
            return list(await session.scalars(query))

    async def conversations(self) -> list[Conversation]:
        async with self.resources.sessionmaker() as session:
            return list(await session.scalars(select(Conversation).order_by(Conversation.id)))

    async def customers(self) -> list[Customer]:
        async with self.resources.sessionmaker() as session:
            return list(await session.scalars(select(Customer).order_by(Customer.id)))


@pytest.fixture
def pipeline_overrides() -> dict[str, dict[str, Any]]:
    return {}


@pytest.fixture
async def pipeline(
    database_url: str,
    redis_server: EmbeddedRedis,
    redis: ArqRedis,
    clean_db: None,
    pipeline_overrides: dict[str, dict[str, Any]],
) -> AsyncIterator[Pipeline]:
    settings = pipeline_settings(database_url, redis_server.url, pipeline_overrides)
    async with open_resources(settings, redis=redis) as resources:
        app = create_app(settings)
        # The lifespan would open its own resources; the test's are shared with the worker instead.
        app.state.resources = resources
        wazzup_api, twilio_api = FakeWazzupApi(WAZZUP_KEY), FakeTwilioApi(TWILIO_SID, TWILIO_TOKEN)
        generator = RecordingReplyGenerator()
        worker = PipelineWorker(resources, generator)
        meta_api = FakeMetaApi(META_TOKEN, META_PHONE_NUMBER_ID)
        with mocked(wazzup_api, twilio_api) as router, mocked_meta(meta_api, router):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE_URL) as client:
                try:
                    yield Pipeline(
                        resources, client, generator, worker, wazzup_api, twilio_api, meta_api, router=router
                    )
                finally:
                    generator.release()
                    await worker.stop()
