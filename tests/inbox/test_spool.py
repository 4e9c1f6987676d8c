"""Webhooks while PostgreSQL is unreachable: acknowledged from the Redis spool, then stored once and answered once.

The app under test talks to the real test Redis and to a PostgreSQL that is not there (an engine on a socket
folder where no server listens: what a stopped server leaves behind). The drain then runs against the real
database, through the real inbox, and a real arq worker answers what it stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from salesbot.app import create_app
from salesbot.db import create_engine, create_sessionmaker
from salesbot.inbox import spool
from salesbot.inbox.router import EMPTY_TWIML
from salesbot.inbox.tasks import drain_inbox_spool
from salesbot.messaging.base import InboundEvent, InboundMessage, WebhookRequest
from salesbot.messaging.registry import build_providers
from salesbot.models import Author, Channel, DeliveryStatus, Direction
from salesbot.resources import Resources
from salesbot.worker import SCHEDULED_CRON_JOBS
from tests.fakes.pipeline import PUBLIC_BASE_URL, WAZZUP_SECRET, Pipeline, twilio_params, wazzup_message

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def resources_on(resources: Resources, database_url: str) -> Resources:
    engine = create_engine(database_url, pool_size=2)
    return replace(resources, engine=engine, sessionmaker=create_sessionmaker(engine))


@dataclass
class Outage:
    """The app of `pipeline` with a switchable database: `down` (no server on the socket) or the live one."""

    app: FastAPI
    live: Resources
    down: Resources
    webhooks: Pipeline  # `pipeline`'s signing helpers, posting to this app

    def database_down(self, resources: Resources | None = None) -> None:
        self.app.state.resources = resources or self.down

    def database_back(self) -> None:
        self.app.state.resources = self.live

    async def spooled(self) -> list[list[InboundEvent]]:
        entries = await self.live.redis.xrange(spool.STREAM_KEY)
        return [spool.decode_events(fields[b"events"]) for _entry_id, fields in entries]


@pytest.fixture
async def outage(pipeline: Pipeline) -> AsyncIterator[Outage]:
    live = pipeline.resources
    with tempfile.TemporaryDirectory(prefix="nopg") as nowhere:
        dead_url = make_url(live.settings.database_url).set(query={"host": nowhere, "port": "5432"})
        down = resources_on(live, dead_url.render_as_string(hide_password=False))
        app = create_app(live.settings)
        app.state.resources = live
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_BASE_URL) as client:
            yield Outage(app, live, down, replace(pipeline, client=client))
        await down.engine.dispose()


async def stored_customer_messages(pipeline: Pipeline) -> Counter[str]:
    return Counter(
        message.provider_message_id or "" for message in await pipeline.messages(direction=Direction.INBOUND)
    )


async def test_webhooks_during_an_outage_get_their_200_then_are_stored_once_and_answered_once(
    outage: Outage, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    outage.database_down()
    twilio = twilio_params("whatsapp:+14155550123", "Do you deliver to Dubai?")
    wazzup = {"messages": [wazzup_message("79990001122", "Сколько стоит доставка?")]}
    with caplog.at_level(logging.WARNING, logger="salesbot.inbox.spool"):
        twilio_answer = await outage.webhooks.twilio(twilio)
        wazzup_answers = [await outage.webhooks.wazzup(wazzup) for _ in range(2)]  # Wazzup redelivers one copy

    # The providers' normal success answers: nothing tells them to retry, and nothing needs to be retried.
    assert twilio_answer.status_code == 200
    assert twilio_answer.headers["content-type"].startswith("text/xml")
    assert twilio_answer.text == EMPTY_TWIML
    assert [(answer.status_code, answer.json()) for answer in wazzup_answers] == [(200, {"ok": True})] * 2
    assert [record.msg for record in caplog.records].count("inbox.spooled") == 3
    assert await pipeline.messages() == []
    assert len(await outage.spooled()) == 3

    outage.database_back()
    report = await spool.drain(outage.live)

    assert (report.drained, report.stored, report.duplicates, report.backlog) == (3, 2, 1, 0)
    stored = await stored_customer_messages(pipeline)
    assert sorted(stored.values()) == [1, 1]
    assert set(stored) == {dict(twilio)["MessageSid"], wazzup["messages"][0]["messageId"]}

    await pipeline.worker.drain()  # the turns the drain scheduled, with a real arq worker
    assert sorted(call.texts for call in pipeline.generator.calls) == [
        ("Do you deliver to Dubai?",),
        ("Сколько стоит доставка?",),
    ]
    assert [sent.chat_id for sent in pipeline.twilio_api.sent] == ["whatsapp:+14155550123"]
    assert [sent.chat_id for sent in pipeline.wazzup_api.sent] == ["79990001122"]
    # Draining again finds nothing: each message was answered exactly once.
    assert (await spool.drain(outage.live)).drained == 0
    await pipeline.worker.drain()
    assert len(pipeline.generator.calls) == 2


async def test_statuses_and_manager_echoes_are_spooled_too(outage: Outage, pipeline: Pipeline) -> None:
    sid = "SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"  # the id in the status fixture
    pipeline.twilio_api.next_sids.append(sid)  # the bot's reply below gets the sid the status fixture reports
    await outage.webhooks.twilio(twilio_params("whatsapp:+14155550123", "hi"))
    await pipeline.worker.drain()
    [reply] = await pipeline.messages(direction=Direction.OUTBOUND)
    assert (reply.provider_message_id, reply.delivery_status) == (sid, DeliveryStatus.SENT)

    outage.database_down()
    status = fixture_bytes("twilio/status_delivered.txt")
    answers = [
        await outage.webhooks.twilio(
            parse_qsl(status.decode(), keep_blank_values=True), path="/webhooks/twilio/status", body=status
        ),
        await outage.webhooks.wazzup(fixture_bytes("wazzup/echo_manager.json")),
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    outage.database_back()
    assert (await spool.drain(outage.live)).drained == 2

    by_id = {message.provider_message_id: message for message in await pipeline.messages()}
    assert by_id[sid].delivery_status is DeliveryStatus.DELIVERED
    manager = by_id["0d2c7a4e-8f1b-4b0a-9c55-3e2f1a6b7c8d"]
    assert (manager.author, manager.text) == (Author.MANAGER, "Добрый день, это менеджер Анна")


async def test_spooled_events_keep_every_field(outage: Outage) -> None:
    """What the drain accepts is exactly what the webhook parsed (all message types, media, echoes, statuses)."""
    providers = build_providers(outage.live)
    requests = [
        (Channel.WAZZUP, name, {"secret": WAZZUP_SECRET})
        for name in ("inbound_all_types.json", "messages_and_statuses.json", "echo_manager.json", "statuses.json")
    ] + [(Channel.TWILIO, name, {}) for name in ("inbound_image.txt", "location.txt", "status_failed.txt")]
    for channel, name, path_params in requests:
        body = fixture_bytes(f"{channel.value}/{name}")
        form = "application/x-www-form-urlencoded"
        headers = {"content-type": "application/json" if name.endswith(".json") else form}
        events = providers.get(channel).parse(WebhookRequest("/", "", headers, body, path_params))
        assert events, name
        assert spool.decode_events(spool.encode_events(events)) == events, name


async def test_with_redis_down_too_nothing_is_acknowledged(outage: Outage, pipeline: Pipeline) -> None:
    with tempfile.TemporaryDirectory(prefix="noredis") as nowhere:
        dead_redis = ArqRedis(unix_socket_path=f"{nowhere}/redis.sock")
        try:
            outage.database_down(replace(outage.down, redis=dead_redis))
            answers = [
                await outage.webhooks.twilio(twilio_params("whatsapp:+14155550123", "hello")),
                await outage.webhooks.wazzup_text("79990001122", "hello"),
            ]
        finally:
            await dead_redis.aclose()
    # 503: the provider knows the message was not taken (Wazzup retries; Twilio reports a failed webhook).
    assert [answer.status_code for answer in answers] == [503, 503]
    assert await outage.spooled() == []


async def test_a_database_error_that_is_not_an_outage_is_not_spooled(outage: Outage, pipeline: Pipeline) -> None:
    """A reachable database that refuses the statement (here: no tables, as after a forgotten migration) is a
    defect to surface, not an outage to paper over: 503 and nothing in the spool."""
    unmigrated = make_url(outage.live.settings.database_url).set(database="postgres")
    broken = resources_on(outage.live, unmigrated.render_as_string(hide_password=False))
    try:
        outage.database_down(broken)
        answer = await outage.webhooks.wazzup_text("79990001122", "hello")
    finally:
        await broken.engine.dispose()
    assert answer.status_code == 503
    assert await outage.spooled() == []


async def test_a_database_that_never_answers_is_an_outage_after_the_deadline(
    outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partitioned or hung server accepts the connection and says nothing; the webhook must still be answered
    well within the provider's timeout (Twilio: 15 s), so the events are spooled at the deadline."""
    monkeypatch.setattr(spool, "ACCEPT_DEADLINE_SECONDS", 0.5)
    silent: list[asyncio.StreamWriter] = []

    async def say_nothing(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Without the deadline this engine would wait an hour for the server's greeting.
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x", connect_args={"timeout": 3600})
    try:
        outage.database_down(replace(outage.down, engine=engine, sessionmaker=create_sessionmaker(engine)))
        async with asyncio.timeout(60):  # a hang guard, not a speed limit
            answer = await outage.webhooks.twilio(twilio_params("whatsapp:+14155550123", "anyone there?"))
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()
        await engine.dispose()
    assert (answer.status_code, answer.text) == (200, EMPTY_TWIML)
    [[message]] = await outage.spooled()
    assert isinstance(message, InboundMessage)
    assert message.text == "anyone there?"


async def test_a_drain_while_the_database_is_still_down_keeps_every_entry(outage: Outage) -> None:
    outage.database_down()
    for index in range(3):
        assert (await outage.webhooks.wazzup_text("79990001122", f"message {index}")).status_code == 200

    report = await spool.drain(outage.down)

    assert report.paused
    assert (report.drained, report.retried, report.dead, report.backlog) == (0, 0, 0, 3)
    assert len(await outage.spooled()) == 3
    assert await outage.live.redis.hlen(spool.ATTEMPTS_KEY) == 0  # an outage is not a failed attempt


async def test_a_drain_that_died_after_committing_an_entry_replays_it_harmlessly(
    outage: Outage, pipeline: Pipeline
) -> None:
    """The entry is deleted only after its commit; a drainer killed in between leaves it, and the replay is a
    duplicate that the claim (or, with the claims lost, the unique key) drops."""
    outage.database_down()
    for index in range(2):
        await outage.webhooks.wazzup_text("79990001122", f"message {index}")
    [first, _second] = await outage.spooled()
    from salesbot.inbox import service

    await service.accept(outage.live, first)  # what the dead drainer committed
    await outage.live.redis.delete(*await outage.live.redis.keys("sb:inbox:msg:*"))  # and the claims are gone too

    report = await spool.drain(outage.live)

    assert (report.drained, report.stored, report.duplicates) == (2, 1, 1)
    assert sorted((await stored_customer_messages(pipeline)).values()) == [1, 1]


async def test_concurrent_drains_store_each_message_once(outage: Outage, pipeline: Pipeline) -> None:
    outage.database_down()
    for index in range(20):
        await outage.webhooks.wazzup_text(f"7999000{index:04d}", f"message {index}")

    reports = await asyncio.gather(*(spool.drain(outage.live) for _ in range(3)))

    assert sum(report.drained for report in reports) == 20
    assert sum(report.busy for report in reports) == 2
    stored = await stored_customer_messages(pipeline)
    assert (len(stored), set(stored.values())) == (20, {1})


async def test_an_entry_that_keeps_failing_goes_to_the_dead_letters(outage: Outage, pipeline: Pipeline) -> None:
    outage.database_down()
    await outage.webhooks.wazzup_text("79990001122", "a message the database will refuse")
    await outage.live.redis.xadd(spool.STREAM_KEY, {"v": "1", "channel": "wazzup", "events": "not json"})
    unmigrated = make_url(outage.live.settings.database_url).set(database="postgres")
    broken = resources_on(outage.live, unmigrated.render_as_string(hide_password=False))
    try:
        reports = [await spool.drain(broken) for _ in range(spool.MAX_ATTEMPTS)]
    finally:
        await broken.engine.dispose()

    # The unreadable entry at once; the refused one after MAX_ATTEMPTS tries, never blocking the stream meanwhile.
    assert [report.dead for report in reports] == [1] + [0] * (spool.MAX_ATTEMPTS - 2) + [1]
    assert [report.retried for report in reports] == [1] * (spool.MAX_ATTEMPTS - 1) + [0]
    assert await outage.spooled() == []
    dead = await outage.live.redis.xrange(spool.DEAD_LETTER_KEY)
    assert [fields[b"error"] for _id, fields in dead] == [b"JSONDecodeError", b"ProgrammingError"]
    [_, (_id, kept)] = dead
    [[message]] = [spool.decode_events(kept[b"events"])]
    assert isinstance(message, InboundMessage)
    assert message.text == "a message the database will refuse"
    assert await spool.backlog(outage.live.redis) == spool.Backlog(pending=0, dead=2)


async def test_a_full_spool_refuses_instead_of_dropping_acknowledged_messages(
    outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "MAX_EVENTS", 2)
    outage.database_down()
    answers = [await outage.webhooks.wazzup_text("79990001122", f"message {index}") for index in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 503]
    texts = [event.text for events in await outage.spooled() for event in events if isinstance(event, InboundMessage)]
    assert texts == ["message 0", "message 1"]


async def test_readyz_reports_the_backlog(outage: Outage) -> None:
    outage.database_down()
    await outage.webhooks.wazzup_text("79990001122", "hello")
    body = (await outage.webhooks.client.get("/readyz")).json()
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["inbox_spool"] == {
        "ok": True,
        "detail": "1 waiting, 0 dead-lettered",
        "latency_ms": body["checks"]["inbox_spool"]["latency_ms"],
    }


async def test_the_worker_drains_the_spool_from_a_cron_job_that_also_runs_at_startup(
    outage: Outage, pipeline: Pipeline
) -> None:
    [job] = [job for job in SCHEDULED_CRON_JOBS if job.name == "cron:drain_inbox_spool"]
    assert job.run_at_startup
    assert job.second is not None
    assert len(job.second) >= 6  # noticed within seconds of the database coming back
    outage.database_down()
    await outage.webhooks.wazzup_text("79990001122", "hello")

    assert await drain_inbox_spool({"resources": outage.down}) == "drained=0 dead=0 backlog=1 (database unreachable)"
    assert await drain_inbox_spool({"resources": outage.live}) == "drained=1 dead=0 backlog=0"
    assert sum((await stored_customer_messages(pipeline)).values()) == 1


def test_spooled_entries_are_plain_json() -> None:
    """Entries stay readable by an operator (redis-cli XRANGE) and by later versions (a version field)."""
    events = [InboundMessage(Channel.WAZZUP, "id-1", "79990001122", "hello")]
    decoded = json.loads(spool.encode_events(events))
    assert decoded[0]["kind"] == "message"
    assert decoded[0]["event"]["text"] == "hello"
    assert spool.ENTRY_VERSION == "1"
