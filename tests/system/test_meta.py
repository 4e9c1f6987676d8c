"""The Meta Cloud API channel with real processes: Meta's verification handshake, a signed customer message, the
reply at the (fake) Graph API, Meta's signed status webhooks moving the reply to read, a forged webhook refused,
and a message the business writes from the WhatsApp Business app (`smb_message_echoes`) silencing the bot.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from salesbot.messaging.meta import compute_signature
from salesbot.models import Author, Conversation, DeliveryStatus, Direction, Message, Owner
from tests.fakes.meta_api import DISPLAY_NUMBER, WABA_ID, FakeMetaApi, FakeMetaServer
from tests.system.conftest import MakeSystem
from tests.system.harness import System, SystemConfig, eventually

pytestmark = pytest.mark.system

TOKEN = "EAAJ-system-meta-token-5e4d3c2b1a09"
NUMBER = "106540352242922"
APP_SECRET = "meta-system-app-secret-0f1e2d3c4b5a6978"
VERIFY_TOKEN = "meta-system-verify-token-8a7b6c5d"
CUSTOMER = "971501234567"


def envelope(field: str, value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": NUMBER},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": field}]}],
    }


def customer_message(text: str) -> dict[str, Any]:
    """Shaped like tests/fixtures/meta/text.json."""
    return envelope(
        "messages",
        {
            "contacts": [{"profile": {"name": "Layla"}, "wa_id": CUSTOMER}],
            "messages": [
                {
                    "from": CUSTOMER,
                    "id": "wamid." + uuid.uuid4().hex,
                    "timestamp": str(int(time.time())),
                    "text": {"body": text},
                    "type": "text",
                }
            ],
        },
    )


def business_app_echo(text: str) -> dict[str, Any]:
    """Shaped like tests/fixtures/meta/echo_text.json."""
    return envelope(
        "smb_message_echoes",
        {
            "message_echoes": [
                {
                    "from": DISPLAY_NUMBER,
                    "to": CUSTOMER,
                    "id": "wamid." + uuid.uuid4().hex,
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ]
        },
    )


async def post(client: httpx.AsyncClient, system: System, body: dict[str, Any], *, secret: str = APP_SECRET) -> int:
    raw = json.dumps(body).encode()
    response = await client.post(
        f"{system.api.url}/webhooks/meta",
        content=raw,
        headers={"content-type": "application/json", "x-hub-signature-256": compute_signature(secret, raw)},
    )
    return response.status_code


async def outbound(system: System) -> list[Any]:
    return [row for row in await system.db.rows() if row.direction is Direction.OUTBOUND]


async def test_meta_channel_end_to_end(make_system: MakeSystem, reliability: dict[str, Any]) -> None:
    api = FakeMetaApi(TOKEN, NUMBER)
    with FakeMetaServer(api, app_secret=APP_SECRET).in_thread() as graph:
        env = {
            "META_API_URL": graph.url,
            "META_ACCESS_TOKEN": TOKEN,
            "META_PHONE_NUMBER_ID": NUMBER,
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
        }
        config = SystemConfig(debounce_seconds=0.3, debounce_max_seconds=2, extra_env=env)
        async with make_system(config) as system, httpx.AsyncClient(timeout=10) as client:
            await system.start(workers=1)
            graph.webhook_url = f"{system.api.url}/webhooks/meta"

            # 1. Meta verifies the callback URL.
            query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1903260781"}
            verified = await client.get(f"{system.api.url}/webhooks/meta", params=query)
            assert (verified.status_code, verified.text) == (200, "1903260781")
            forged_handshake = await client.get(
                f"{system.api.url}/webhooks/meta", params={**query, "hub.verify_token": "guess"}
            )
            assert forged_handshake.status_code == 403

            # 2. A forged message is refused and stored nowhere; the signed one is answered through the Graph API.
            assert await post(client, system, customer_message("Do you sell office chairs?"), secret="guess") == 403
            started = time.monotonic()
            assert await post(client, system, customer_message("Do you sell office chairs?")) == 200

            async def replied() -> bool:
                return len(api.sent) >= 1

            await eventually(replied, what="the reply at the Graph API", timeout=60)
            reply_seconds = time.monotonic() - started
            [sent] = api.sent
            assert sent.chat_id == CUSTOMER
            assert sent.text

            # 3. Meta's status webhooks (sent, delivered, read; signed, carrying our key) reach the row.
            async def read() -> bool:
                rows = [row for row in await outbound(system) if row.author is not Author.MANAGER]
                return [row.delivery_status for row in rows] == [DeliveryStatus.READ]

            await eventually(read, what="the reply marked read", timeout=30)
            [reply] = await outbound(system)
            assert reply.provider_message_id == sent.provider_message_id
            assert graph.status_failures == 0

            # 4. The owner answers from the WhatsApp Business app: the bot stays silent afterwards.
            assert await post(client, system, business_app_echo("Hello Layla, Omar here. Which model?")) == 200

            async def taken_over() -> bool:
                owner = await system.db.scalar(select(Conversation.owner))
                return owner is Owner.HUMAN

            await eventually(taken_over, what="the takeover", timeout=30)
            assert await post(client, system, customer_message("The black one, 12 pieces")) == 200
            await system.settled(timeout=60)

            assert len(api.sent) == 1
            authors = await system.db.scalar(
                select(Message.author).where(Message.text == "Hello Layla, Omar here. Which model?")
            )
            assert authors is Author.MANAGER
            logs = system.logs()
            assert [name for name, value in env.items() if name != "META_API_URL" and value in logs] == []
            assert CUSTOMER not in logs
            reliability.update(
                {
                    "reply_seconds": round(reply_seconds, 2),
                    "statuses_posted": graph.statuses_posted,
                    "graph_requests": len(api.requests),
                }
            )


async def test_meta_lost_send_answer_is_reconciled_not_resent(
    make_system: MakeSystem, reliability: dict[str, Any]
) -> None:
    """Meta accepts the reply but the connection drops before its answer: the worker cannot know the message left.
    Meta has no idempotency key, so a resend would reach the customer twice; Meta's status webhooks carry our key
    (`biz_opaque_callback_data`) and reconcile the row during the retry grace, and nothing is sent again."""
    api = FakeMetaApi(TOKEN, NUMBER, lose_answer_next=1)
    with FakeMetaServer(api, app_secret=APP_SECRET).in_thread() as graph:
        env = {
            "META_API_URL": graph.url,
            "META_ACCESS_TOKEN": TOKEN,
            "META_PHONE_NUMBER_ID": NUMBER,
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
        }
        config = SystemConfig(debounce_seconds=0.3, debounce_max_seconds=2, extra_env=env)
        async with make_system(config) as system, httpx.AsyncClient(timeout=10) as client:
            await system.start(workers=1)
            graph.webhook_url = f"{system.api.url}/webhooks/meta"
            assert await post(client, system, customer_message("Do you deliver to Dubai?")) == 200

            async def lost() -> bool:
                return len(api.lost) == 1

            await eventually(lost, what="the send accepted and its answer lost", timeout=60)
            lost_at = time.monotonic()

            async def reconciled() -> bool:
                rows = await outbound(system)
                return [(row.provider_message_id, row.delivery_status) for row in rows] == [
                    (api.lost[0].provider_message_id, DeliveryStatus.READ)
                ]

            reconciled_seconds = await eventually(reconciled, what="the row reconciled by statuses", timeout=30)
            # Past the retry grace: the scheduled retry has run and found nothing to send.
            await asyncio.sleep(max(0.0, 15 - (time.monotonic() - lost_at)))
            await system.settled(timeout=60)
            assert len(api.sent) == 1
            assert len(api.requests) == 1
            reliability.update({"reconciled_seconds_after_loss": round(reconciled_seconds, 2), "resends": 0})
