from __future__ import annotations

import asyncio
import json

import pytest
from arq.connections import ArqRedis

from salesbot.kit.phones import normalize_phone
from salesbot.messaging.base import InboundMessage, MalformedWebhookError, WebhookRejectedError, WebhookRequest
from salesbot.messaging.console import ConsoleProvider, read_replies, wait_for_replies


def request(body: object) -> WebhookRequest:
    return WebhookRequest(path="/webhooks/console", query="", headers={}, body=json.dumps(body).encode())


async def test_parse_and_verify(redis: ArqRedis) -> None:
    provider = ConsoleProvider(redis, enabled=True)
    [message] = provider.parse(request({"phone": "+7 (901) 111-22-33", "text": "hi", "name": " Ivan ", "id": "c-1"}))
    assert isinstance(message, InboundMessage)
    assert (message.chat_id, message.contact_name, message.provider_message_id) == ("+79011112233", "Ivan", "c-1")
    [anonymous] = provider.parse(request({"phone": "+79011112233", "text": "again"}))
    assert anonymous.provider_message_id.startswith("console-in-")
    with pytest.raises(MalformedWebhookError):
        provider.parse(request({"phone": "+79011112233", "text": "hi", "id": "has spaces"}))
    with pytest.raises(WebhookRejectedError) as excinfo:
        ConsoleProvider(redis, enabled=False).verify(request({}))
    assert excinfo.value.status_code == 404


def test_normalize_phone() -> None:
    assert normalize_phone("+1 555.010-0") == "+15550100"
    for bad in ("", "12", "+1 555 abc", "+" + "1" * 21):
        with pytest.raises(ValueError, match="phone"):
            normalize_phone(bad)


async def test_sends_are_idempotent_and_readable(redis: ArqRedis) -> None:
    provider = ConsoleProvider(redis, enabled=True)
    first = await provider.send_text("+15550100", "one", idempotency_key="reply:1:1:0")
    again = await provider.send_text("+15550100", "one", idempotency_key="reply:1:1:0")
    assert (again.provider_message_id, again.already_sent) == (first.provider_message_id, True)
    await provider.send_text("+15550100", "two", idempotency_key="reply:1:1:1")
    await provider.send_text("+15550199", "someone else", idempotency_key="reply:2:1:0")

    replies = await read_replies(redis, "+15550100")
    assert [r.text for r in replies] == ["one", "two"]
    assert await read_replies(redis, "+15550100", after=replies[0].cursor) == replies[1:]
    # No phone number appears in any key.
    assert not [key for key in await redis.keys("*") if b"5550100" in key]


async def test_wait_for_replies_blocks_until_one_arrives(redis: ArqRedis) -> None:
    provider = ConsoleProvider(redis, enabled=True)
    waiter = asyncio.create_task(wait_for_replies(redis, "+15550100", timeout_seconds=5))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await provider.send_text("+15550100", "hello", idempotency_key="k:0")
    [reply] = await asyncio.wait_for(waiter, 5)
    assert reply.text == "hello"
    assert await wait_for_replies(redis, "+15550100", after=reply.cursor, timeout_seconds=0.1) == []
