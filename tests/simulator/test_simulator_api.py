"""The simulator's endpoints over the real inbox -> worker -> agent -> outbox path (console provider)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.app import create_app
from salesbot.models import Author, DeliveryStatus, Direction, Message
from salesbot.settings import Settings
from tests.live import LiveStack


async def wait_for_replies(client: httpx.AsyncClient, phone: str, *, count: int, timeout: float = 60) -> dict:
    """Poll like the page does until `count` replies arrived and no turn is under way."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = (await client.get("/simulator/api/replies", params={"phone": phone})).json()
        if len(body["replies"]) >= count and not body["typing"]:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {count} replies in time: {body}")


async def test_a_burst_gets_one_reply_through_the_console_channel(
    live: LiveStack, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    phone = "+1 (555) 010-0123"
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        page = await client.get("/simulator")
        assert page.status_code == 200
        assert 'id="sim-messages"' in page.text
        for index, text in enumerate(["Hi!", "Do you sell laser printers?", "Something under 300 dollars"]):
            response = await client.post(
                "/webhooks/console", json={"phone": phone, "text": text, "name": "Sim Tester", "id": f"t-{index}"}
            )
            assert response.status_code == 200, response.text

        body = await wait_for_replies(client, phone, count=1)
        assert len(body["replies"]) == 1
        reply = body["replies"][0]
        assert reply["text"].strip()

        # Nothing newer after the cursor; the transcript has the burst and the one reply.
        later = (await client.get("/simulator/api/replies", params={"phone": phone, "after": reply["cursor"]})).json()
        assert later == {"replies": [], "typing": False}
        history = (await client.get("/simulator/api/history", params={"phone": phone})).json()
        assert history["phone"] == "+15550100123"
        assert history["cursor"] == reply["cursor"]
        assert [(m["direction"], m["author"]) for m in history["messages"]] == [
            ("inbound", "customer"),
            ("inbound", "customer"),
            ("inbound", "customer"),
            ("outbound", "bot"),
        ]
        assert history["messages"][-1]["provider_message_id"] == reply["message_id"]
        customers = (await client.get("/simulator/api/customers")).json()
        assert [(c["phone"], c["name"]) for c in customers] == [("+15550100123", "Sim Tester")]

    async with sessionmaker() as session:
        outbound = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.OUTBOUND)
        )
        bot = await session.scalar(select(Message).where(Message.author == Author.BOT))
    assert outbound == 1
    assert bot is not None
    assert bot.model
    assert bot.latency_ms is not None


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/simulator/api/replies", {"phone": "not a phone"}, "phone"),
        ("/simulator/api/replies", {"phone": "12"}, "phone"),
        ("/simulator/api/replies", {"phone": "+15550100", "after": "x; DROP"}, "after"),
        ("/simulator/api/history", {}, "phone"),
        ("/simulator/api/history", {"phone": "+1 ((( )))"}, "phone"),
        ("/simulator/api/customers", {"limit": "0"}, "limit"),
    ],
)
async def test_bad_simulator_parameters_are_422(
    sim_settings: Settings, redis: ArqRedis, clean_db: None, path: str, params: dict[str, str], field: str
) -> None:
    app = create_app(sim_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        response = await client.get(path, params=params)
    assert response.status_code == 422
    assert ("query", field) in {tuple(error["loc"]) for error in response.json()["detail"]}


async def test_no_simulator_without_the_console_provider(settings: Settings, redis: ArqRedis) -> None:
    production_like = settings.model_copy(update={"console_enabled": False})
    app = create_app(production_like)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        assert (await client.get("/simulator")).status_code == 404
        assert (await client.get("/simulator/api/replies", params={"phone": "+15550100"})).status_code == 404
        assert "/simulator/api/replies" not in (await client.get("/openapi.json")).text


async def test_typing_while_messages_wait_for_their_turn_or_a_reply_waits_to_be_sent(
    sim_settings: Settings, redis: ArqRedis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """No worker runs here: what the page shows follows the stored state alone."""
    app = create_app(sim_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):

        async def typing() -> bool:
            body = (await client.get("/simulator/api/replies", params={"phone": "+15550100999"})).json()
            return bool(body["typing"])

        assert await typing() is False  # an unknown phone: nothing under way
        # A cursor beyond any Redis stream id (two unsigned 64-bit numbers) simply has nothing after it.
        for cursor in ("99999999999999999999-0", "18446744073709551615-18446744073709551615", "5-99999999999999999999"):
            beyond = await client.get("/simulator/api/replies", params={"phone": "+15550100999", "after": cursor})
            assert beyond.status_code == 200
            assert beyond.json()["replies"] == []
        # The last id before the end is still a valid place to start from.
        edge = {"phone": "+15550100999", "after": "18446744073709551615-18446744073709551614"}
        assert (await client.get("/simulator/api/replies", params=edge)).status_code == 200
        response = await client.post("/webhooks/console", json={"phone": "+15550100999", "text": "hello?"})
        assert response.status_code == 200
        assert await typing() is True  # stored, waiting for its turn

        async with sessionmaker() as session:
            inbound = await session.scalar(select(Message).where(Message.direction == Direction.INBOUND))
            assert inbound is not None
            inbound.processed_at = inbound.created_at  # the turn took it...
            session.add(
                Message(  # ...and wrote a reply that is not sent yet
                    conversation_id=inbound.conversation_id,
                    channel=inbound.channel,
                    direction=Direction.OUTBOUND,
                    author=Author.BOT,
                    text="Hi!",
                    delivery_status=DeliveryStatus.PENDING,
                    idempotency_key="test-pending-reply",
                )
            )
            await session.commit()
        assert await typing() is True
        async with sessionmaker() as session:
            reply = await session.scalar(select(Message).where(Message.direction == Direction.OUTBOUND))
            assert reply is not None
            reply.delivery_status = DeliveryStatus.SENT
            await session.commit()
        assert await typing() is False
