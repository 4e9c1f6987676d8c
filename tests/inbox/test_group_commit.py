"""Group commit: concurrent webhooks share one transaction, and a batch never answers for what it did not store.

Each test gives the app a batcher that waits for exactly the webhooks the test sends (a whole batch flushes at
once; the long wait only bounds a broken test), so what lands in one transaction is decided, not timed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError

from salesbot.app import create_app
from salesbot.inbox import claims, service, spool
from salesbot.inbox.batcher import InboxBatcher
from salesbot.messaging.base import InboundMessage
from salesbot.models import Channel, Conversation, Customer, Message
from salesbot.resources import Resources
from tests.fakes.pipeline import PUBLIC_BASE_URL, Pipeline, wazzup_message
from tests.inbox.test_spool import Outage

# Never reached: every batch in these tests is full before it.
WAIT_SECONDS = 30.0


def batcher_for(resources: Resources, size: int) -> InboxBatcher:
    return InboxBatcher(resources, wait_seconds=WAIT_SECONDS, max_webhooks=size)


@dataclass
class Commits:
    count: int = 0


@pytest.fixture
def commits(pipeline: Pipeline) -> Iterator[Commits]:
    """Transactions committed on the app's engine while the test runs."""
    counted = Commits()
    engine = pipeline.resources.engine.sync_engine

    def on_commit(_connection: object) -> None:
        counted.count += 1

    event.listen(engine, "commit", on_commit)
    yield counted
    event.remove(engine, "commit", on_commit)


async def posting_with(pipeline: Pipeline, batcher: InboxBatcher) -> AsyncIterator[Pipeline]:
    app = create_app(pipeline.resources.settings)
    app.state.resources = pipeline.resources
    app.state.inbox_batcher = batcher
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_BASE_URL) as client:
        yield replace(pipeline, client=client)


@pytest.fixture
async def batch_of_four(pipeline: Pipeline) -> AsyncIterator[Pipeline]:
    async for posting in posting_with(pipeline, batcher_for(pipeline.resources, 4)):
        yield posting


async def stored(pipeline: Pipeline) -> list[tuple[str, str]]:
    async with pipeline.resources.sessionmaker() as session:
        rows = await session.execute(select(Message.provider_message_id, Message.text).order_by(Message.id))
        return [(str(provider_id), text) for provider_id, text in rows]


def body(*messages: dict[str, object]) -> bytes:
    return json.dumps({"messages": list(messages)}).encode()


async def test_concurrent_webhooks_share_one_transaction(batch_of_four: Pipeline, commits: Commits) -> None:
    webhooks = [wazzup_message(f"7999000000{i}", f"hello {i}") for i in range(4)]

    responses = await asyncio.gather(*(batch_of_four.wazzup(body(message)) for message in webhooks))

    assert [(r.status_code, r.json()) for r in responses] == [(200, {"ok": True})] * 4
    assert commits.count == 1
    assert sorted(await stored(batch_of_four)) == sorted((m["messageId"], m["text"]) for m in webhooks)
    # Each conversation's turn is scheduled, as for a webhook committed alone.
    conversations = await batch_of_four.conversations()
    jobs = {job.decode() for job in await batch_of_four.redis.zrange("arq:queue", 0, -1)}
    assert jobs == {f"turn:{conversation.id}:0" for conversation in conversations}
    assert len(conversations) == 4


async def test_batches_that_follow_each_other_keep_one_connection(batch_of_four: Pipeline, commits: Commits) -> None:
    """Taking a connection from the pool costs a liveness check (three round trips): the batcher takes one for as
    long as batches keep coming, and gives it back when the queue is empty."""
    pool = batch_of_four.resources.engine.sync_engine.pool
    checkouts = Commits()

    def on_checkout(*_args: object) -> None:
        checkouts.count += 1

    event.listen(pool, "checkout", on_checkout)
    try:
        webhooks = [wazzup_message(f"7999222000{i}", f"hello {i}") for i in range(8)]
        responses = await asyncio.gather(*(batch_of_four.wazzup(body(message)) for message in webhooks))
    finally:
        event.remove(pool, "checkout", on_checkout)

    assert [r.status_code for r in responses] == [200] * 8
    assert commits.count == 2
    assert checkouts.count == 1
    assert sorted(await stored(batch_of_four)) == sorted((m["messageId"], m["text"]) for m in webhooks)
    # Given back once the queue is empty (right after the last answers).
    async with asyncio.timeout(30):
        while pool.checkedout():  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)


async def test_a_lingering_batcher_keeps_its_connection_through_quiet_moments(
    pipeline: Pipeline, commits: Commits
) -> None:
    """At a moderate rate each batch is written before the next webhook arrives: a batcher that gave its connection
    back whenever its queue emptied paid the pool's liveness check (three round trips) for nearly every webhook."""
    pool = pipeline.resources.engine.sync_engine.pool
    checkouts = Commits()

    def on_checkout(*_args: object) -> None:
        checkouts.count += 1

    # A linger no test run outlasts: the batcher ends only when closed.
    batcher = InboxBatcher(pipeline.resources, wait_seconds=0, linger_seconds=WAIT_SECONDS)
    event.listen(pool, "checkout", on_checkout)
    try:
        async for posting in posting_with(pipeline, batcher):
            webhooks = [wazzup_message(f"7999333000{i}", f"hello {i}") for i in range(3)]
            responses = []
            for message in webhooks:  # one after the other: every batch finds the queue empty when it is done
                responses.append(await posting.wazzup(body(message)))
                await asyncio.sleep(0.01)
            assert [r.status_code for r in responses] == [200] * 3
            assert commits.count == 3
            assert checkouts.count == 1
            assert pool.checkedout() == 1  # type: ignore[attr-defined]
            await batcher.close()
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
            assert sorted(await stored(posting)) == sorted((m["messageId"], m["text"]) for m in webhooks)
    finally:
        event.remove(pool, "checkout", on_checkout)


async def test_the_app_gives_the_kept_connection_back_when_it_stops(pipeline: Pipeline) -> None:
    """The API's batcher lingers (`LINGER_SECONDS`): the app's shutdown gives its connection back to the pool before
    the engine is disposed (a connection still out then would stay open, outside any pool)."""
    app = create_app(pipeline.resources.settings)
    checkins = Commits()

    def on_checkin(*_args: object) -> None:
        checkins.count += 1

    async with app.router.lifespan_context(app):
        assert app.state.inbox_batcher.linger_seconds > 0
        pool = app.state.resources.engine.sync_engine.pool
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_BASE_URL) as client:
            answer = await replace(pipeline, client=client).wazzup(body(wazzup_message("79990005500", "hello")))
        assert answer.status_code == 200
        assert pool.checkedout() == 1  # kept for the next webhook
        event.listen(pool, "checkin", on_checkin)
    event.remove(pool, "checkin", on_checkin)
    assert checkins.count == 1


async def test_a_kept_connection_that_the_server_closed_is_replaced(pipeline: Pipeline) -> None:
    """The connection kept through a quiet moment is gone when the next webhook comes (the server restarted, a
    proxy timed it out): the webhook is stored on a fresh connection, not spooled."""
    batcher = InboxBatcher(pipeline.resources, wait_seconds=0, linger_seconds=WAIT_SECONDS)
    try:
        first = await batcher.accept([inbound("79990004400", "before", provider_message_id="kept-1")])
        assert first.stored == 1
        async with pipeline.resources.engine.connect() as admin:
            killed = await admin.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
                )
            )
        assert killed
        second = await batcher.accept([inbound("79990004400", "after", provider_message_id="kept-2")])
    finally:
        await batcher.close()

    assert (second.stored, second.spooled) == (1, False)
    assert [provider_id for provider_id, _text in await stored(pipeline)] == ["kept-1", "kept-2"]
    assert await pipeline.redis.xlen(spool.STREAM_KEY) == 0


async def test_a_duplicate_within_one_batch_is_stored_once(batch_of_four: Pipeline, commits: Commits) -> None:
    copy = wazzup_message("79990001122", "hello")
    other = wazzup_message("79990003344", "hi")

    responses = await asyncio.gather(*(batch_of_four.wazzup(body(m)) for m in (copy, copy, other, copy)))

    # Every copy gets the answer a lone redelivery gets today.
    assert [(r.status_code, r.json()) for r in responses] == [(200, {"ok": True})] * 4
    assert commits.count == 1
    assert sorted(await stored(batch_of_four)) == sorted([(copy["messageId"], "hello"), (other["messageId"], "hi")])
    jobs = [job for job in await batch_of_four.redis.zrange("arq:queue", 0, -1) if job.startswith(b"turn:")]
    assert len(jobs) == 2


async def test_a_duplicate_across_batches_is_stored_once(batch_of_four: Pipeline) -> None:
    copy = wazzup_message("79990001122", "hello")
    first = await asyncio.gather(*(batch_of_four.wazzup(body(copy)) for _ in range(4)))
    # The same id again, as the first item of a batch of new messages; and a redelivery after Redis forgot it.
    await batch_of_four.redis.flushdb()
    news = [wazzup_message(f"7999111000{i}", f"new {i}") for i in range(3)]
    second = await asyncio.gather(*(batch_of_four.wazzup(body(m)) for m in (copy, *news)))

    assert [r.status_code for r in first + second] == [200] * 8
    assert sorted(await stored(batch_of_four)) == sorted(
        [(copy["messageId"], "hello"), *((m["messageId"], m["text"]) for m in news)]
    )


async def test_console_webhook_reports_the_duplicate_inside_a_batch(pipeline: Pipeline) -> None:
    async for posting in posting_with(pipeline, batcher_for(pipeline.resources, 2)):
        first, second = await asyncio.gather(
            *(posting.console("+79990005566", "hello", id="console-dup-1") for _ in range(2))
        )
        assert first.status_code == second.status_code == 200
        # One of the two stored it and names the conversation; the other is the duplicate, as for a lone redelivery.
        answers = sorted((r.json()["duplicate"], len(r.json()["conversation_ids"])) for r in (first, second))
        assert answers == [(False, 1), (True, 0)]
        assert len(await stored(posting)) == 1


def inbound(chat_id: str, text: str, *, provider_message_id: str) -> InboundMessage:
    return InboundMessage(channel=Channel.WAZZUP, provider_message_id=provider_message_id, chat_id=chat_id, text=text)


async def test_messages_of_one_chat_keep_their_arrival_order(pipeline: Pipeline, commits: Commits) -> None:
    batcher = batcher_for(pipeline.resources, 4)
    chat, texts = "79990001234", ["first", "second", "third", "fourth"]
    other = inbound("79990000001", "another chat", provider_message_id="other")
    # Tasks take their first step in the order they were created: that is the order they join the batch.
    arrivals = [inbound(chat, texts[0], provider_message_id="m-0"), other]
    arrivals += [inbound(chat, text, provider_message_id=f"m-{i}") for i, text in enumerate(texts[1:3], start=1)]
    first = [asyncio.create_task(batcher.accept([event])) for event in arrivals]
    # Two messages of the same chat in one webhook, after the batch's four: the next batch.
    last = asyncio.create_task(
        batcher.accept(
            [inbound(chat, texts[3], provider_message_id="m-3"), inbound(chat, "fifth", provider_message_id="m-4")]
        )
    )
    await asyncio.gather(*first)
    # The next batch waits for company: three webhooks of other chats fill it.
    company = [inbound(f"7999000001{i}", "company", provider_message_id=f"company-{i}") for i in range(3)]
    await asyncio.gather(last, *(batcher.accept([event]) for event in company))

    assert commits.count == 2
    async with pipeline.resources.sessionmaker() as session:
        rows = await session.execute(
            select(Message.text)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Customer, Customer.id == Conversation.customer_id)
            .where(Customer.chat_id == chat)
            .order_by(Message.id)
        )
        assert list(rows.scalars()) == [*texts, "fifth"]


async def test_an_item_that_fails_does_not_lose_the_others(pipeline: Pipeline, commits: Commits) -> None:
    batcher = batcher_for(pipeline.resources, 3)
    # Longer than the column holds: PostgreSQL refuses the row, and with it the batch's transaction.
    refused = inbound("79990000002", "too long an id", provider_message_id="x" * 300)
    good = [inbound(f"7999000000{i}", f"ok {i}", provider_message_id=f"ok-{i}") for i in (1, 3)]

    outcomes = await asyncio.gather(
        batcher.accept([good[0]]), batcher.accept([refused]), batcher.accept([good[1]]), return_exceptions=True
    )

    assert isinstance(outcomes[0], service.InboxResult)
    assert outcomes[0].stored == 1
    assert isinstance(outcomes[1], DBAPIError)
    assert isinstance(outcomes[2], service.InboxResult)
    assert outcomes[2].stored == 1
    assert sorted(await stored(pipeline)) == [("ok-1", "ok 1"), ("ok-3", "ok 3")]
    # The failed batch committed nothing; then each webhook alone: two commits, the refused one rolled back.
    assert commits.count == 2
    # The refused message's claim was given back: its redelivery is not taken for a copy in flight.
    assert await pipeline.redis.get(claims.claim_key(refused)) is None


async def test_a_batch_without_a_database_spools_every_webhook(outage: Outage) -> None:
    outage.app.state.inbox_batcher = batcher_for(outage.down, 3)
    outage.database_down()
    webhooks = [wazzup_message(f"7999000002{i}", f"while down {i}") for i in range(3)]

    responses = await asyncio.gather(*(outage.webhooks.wazzup(body(message)) for message in webhooks))

    assert [(r.status_code, r.json()) for r in responses] == [(200, {"ok": True})] * 3
    spooled = await outage.spooled()
    assert sorted(events[0].provider_message_id for events in spooled) == sorted(m["messageId"] for m in webhooks)


async def test_a_batch_without_database_and_spool_fails_every_webhook(
    outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage.app.state.inbox_batcher = batcher_for(outage.down, 3)
    outage.database_down()
    monkeypatch.setattr(spool, "MAX_EVENTS", 0)  # full: the spool refuses rather than drop acknowledged messages
    webhooks = [wazzup_message(f"7999000003{i}", f"lost {i}") for i in range(3)]

    responses = await asyncio.gather(*(outage.webhooks.wazzup(body(message)) for message in webhooks))

    assert [r.status_code for r in responses] == [503] * 3
    assert await outage.live.redis.xlen(spool.STREAM_KEY) == 0
