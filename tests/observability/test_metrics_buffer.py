"""Fleet metrics are buffered in the process and written in batches: still counted exactly, and nothing is left
behind when the process shuts down gracefully."""

from __future__ import annotations

import asyncio
import json

import pytest
from arq.connections import ArqRedis

from salesbot.kit import metrics as fleet
from salesbot.observability import metrics
from salesbot.resources import open_resources
from salesbot.settings import Settings
from tests.fakes.pipeline import Pipeline, wazzup_message
from tests.observability.test_metrics import scrape, value


class _Webhook:
    def __init__(self, stored: int = 1, duplicates: int = 0, spooled: bool = False) -> None:
        self.stored, self.duplicates, self.spooled = stored, duplicates, spooled


class _TurnOutcome:
    result = "replied"
    handoff = False
    debounce_seconds = 3.0


async def written(redis: ArqRedis) -> dict[tuple[str, tuple[str, ...], str], float]:
    """The raw `sb:metrics` hash, read without flushing anything."""
    raw = await redis.hgetall(fleet.KEY)  # type: ignore[misc]
    fields: dict[tuple[str, tuple[str, ...], str], float] = {}
    for key, amount in raw.items():
        name, labels, suffix = json.loads(key)
        fields[(name, tuple(labels), suffix)] = float(amount)
    return fields


@pytest.fixture
def no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only explicit flushes write (the timer would fire long after the test)."""
    monkeypatch.setattr(fleet, "FLUSH_SECONDS", 3600.0)


@pytest.mark.usefixtures("no_timer")
async def test_recordings_wait_in_the_process_and_one_flush_writes_them_exactly(redis: ArqRedis) -> None:
    with fleet.bound(redis):
        await asyncio.gather(
            *(metrics.record_webhook("wazzup", _Webhook()) for _ in range(300)),
            *(metrics.record_webhook("wazzup", _Webhook(stored=0, duplicates=1)) for _ in range(7)),
            *(metrics.record_turn(_TurnOutcome(), seconds) for seconds in (0.2, 1.7, 9.0)),
        )
        # Nothing was written per recording.
        assert await written(redis) == {}
        await fleet.flush()

    fields = await written(redis)
    assert fields[("salesbot_webhooks", ("wazzup", "accepted"), "total")] == 300
    assert fields[("salesbot_webhooks", ("wazzup", "duplicate"), "total")] == 7
    assert fields[("salesbot_messages_received", ("wazzup",), "total")] == 300
    assert fields[("salesbot_turns", ("replied",), "total")] == 3
    assert fields[("salesbot_turn_seconds", (), "count")] == 3
    assert fields[("salesbot_turn_seconds", (), "sum")] == pytest.approx(10.9)
    assert fields[("salesbot_turn_seconds", (), "0.25")] == 1
    assert fields[("salesbot_turn_seconds", (), "2.0")] == 1
    assert fields[("salesbot_turn_seconds", (), "10.0")] == 1
    # A second flush has nothing left to add: nothing is counted twice.
    await fleet.flush()
    assert await written(redis) == fields


async def test_the_timer_writes_without_anybody_asking(redis: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet, "FLUSH_SECONDS", 0.01)
    with fleet.bound(redis):
        await metrics.inc(metrics.HANDOFFS, reason="agent")
        await metrics.inc(metrics.HANDOFFS, reason="agent")
        async with asyncio.timeout(30):
            while not await written(redis):
                await asyncio.sleep(0.01)
    assert await written(redis) == {("salesbot_handoffs", ("agent",), "total"): 2}


@pytest.mark.usefixtures("no_timer")
async def test_a_graceful_shutdown_writes_what_is_still_pending(settings: Settings, redis: ArqRedis) -> None:
    async with open_resources(settings, redis=redis):
        await metrics.record_delivery("wazzup", "sent", seconds=0.4)
        await metrics.record_delivery("wazzup", "retry")
        assert await written(redis) == {}

    fields = await written(redis)
    assert fields[("salesbot_delivery_attempts", ("wazzup", "sent"), "total")] == 1
    assert fields[("salesbot_delivery_attempts", ("wazzup", "retry"), "total")] == 1
    assert fields[("salesbot_delivery_seconds", ("wazzup",), "count")] == 1


@pytest.mark.usefixtures("no_timer")
async def test_a_scrape_counts_every_concurrent_webhook_once(pipeline: Pipeline) -> None:
    bodies = [{"messages": [wazzup_message(f"7999000{index:04d}", "hello")]} for index in range(40)]
    answers = await asyncio.gather(*(pipeline.wazzup(body) for body in bodies))
    assert {answer.status_code for answer in answers} == {200}
    # The provider redelivers some of them.
    answers = await asyncio.gather(*(pipeline.wazzup(body) for body in bodies[:5]))
    assert {answer.status_code for answer in answers} == {200}

    samples = await scrape(pipeline.client)

    assert value(samples, "salesbot_webhooks_total", provider="wazzup", outcome="accepted") == 40
    assert value(samples, "salesbot_webhooks_total", provider="wazzup", outcome="duplicate") == 5
    assert value(samples, "salesbot_messages_received_total", provider="wazzup") == 40


@pytest.mark.usefixtures("no_timer")
async def test_a_process_on_another_event_loop_flushes_only_its_own_increments(
    settings: Settings, redis: ArqRedis
) -> None:
    # A CLI command (`salesbot check`) runs its own `asyncio.run` and opens its own resources while increments of
    # this loop wait: its shutdown flush must neither touch this loop's Redis client nor lose these increments.
    with fleet.bound(redis):
        await metrics.record_turn(_TurnOutcome(), 0.4)

        async def command() -> None:
            async with open_resources(settings) as resources:
                await fleet.inc(metrics.HANDOFFS, reason="agent")
                assert resources.redis is not redis

        await asyncio.to_thread(asyncio.run, command())
        assert await written(redis) == {("salesbot_handoffs", ("agent",), "total"): 1.0}
        await fleet.flush()

    fields = await written(redis)
    assert fields[("salesbot_turns", ("replied",), "total")] == 1
