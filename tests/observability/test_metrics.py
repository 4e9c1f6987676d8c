"""`GET /metrics`: a conversation counted end to end through the real pipeline, read back with Prometheus' own parser.

The webhooks go through the real app, the turn and the delivery through a real arq worker; the counters they
record live in Redis, so the scrape sees them although (as in production) no process-local registry holds them.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import ValidationError
from sqlalchemy import make_url

from salesbot import queues
from salesbot.agent.reply import LLMUsage
from salesbot.app import create_app
from salesbot.conversations.repository import add_llm_usage
from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.kit import metrics as fleet
from salesbot.models import Channel
from salesbot.observability import metrics
from salesbot.settings import AuthSettings, Settings
from tests.conftest import TEST_SECRETS_ENV
from tests.fakes.pipeline import PUBLIC_BASE_URL, Pipeline, twilio_params, wazzup_message
from tests.test_settings import PRODUCTION_OK, real_secrets

API_TOKEN = TEST_SECRETS_ENV["API_TOKEN"]
METRICS_TOKEN = "prometheus-scrape-token-5e1f0a9c"
CHAT = "79990001122"


async def scrape(client: httpx.AsyncClient, token: str = API_TOKEN) -> list[Sample]:
    response = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sample's value; 0 when the series does not exist yet (a counter nobody incremented)."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


async def test_a_conversation_is_counted_from_the_webhook_to_the_delivery(pipeline: Pipeline) -> None:
    before = await scrape(pipeline.client)
    # With nothing recorded yet, every family is still declared and both sources were read.
    assert value(before, "salesbot_metrics_source_up", source="redis") == 1
    assert value(before, "salesbot_metrics_source_up", source="database") == 1
    assert value(before, "salesbot_webhooks_total", provider="wazzup", outcome="accepted") == 0
    assert value(before, "salesbot_queue_jobs", queue=queues.TURNS, state="ready") == 0

    body = json.dumps({"messages": [wazzup_message(CHAT, "Do you have red chairs?")]}).encode()
    assert (await pipeline.wazzup(body)).status_code == 200
    assert (await pipeline.wazzup(body)).status_code == 200  # the provider's redelivery
    assert (await pipeline.wazzup(body, secret="not-the-secret")).status_code == 404
    assert (await pipeline.twilio(twilio_params("whatsapp:+14155550123", "hi"), signature="forged")).status_code == 403
    assert (await pipeline.wazzup(b"{not json")).status_code == 400

    queued = await scrape(pipeline.client)
    # The burst's turn waits in the queue for the end of the debounce window.
    assert value(queued, "salesbot_queue_jobs", queue=queues.TURNS, state="deferred") == 1

    await pipeline.worker.drain()
    after = await scrape(pipeline.client)

    assert value(after, "salesbot_webhooks_total", provider="wazzup", outcome="accepted") == 1
    assert value(after, "salesbot_webhooks_total", provider="wazzup", outcome="duplicate") == 1
    assert value(after, "salesbot_webhooks_total", provider="wazzup", outcome="rejected") == 1
    assert value(after, "salesbot_webhooks_total", provider="wazzup", outcome="invalid") == 1
    assert value(after, "salesbot_webhooks_total", provider="twilio", outcome="rejected") == 1
    assert value(after, "salesbot_messages_received_total", provider="wazzup") == 1
    assert value(after, "salesbot_turns_total", result="replied") == 1
    assert value(after, "salesbot_delivery_attempts_total", provider="wazzup", outcome="sent") == 1
    assert value(after, "salesbot_outbound_messages", status="sent") == 1
    assert value(after, "salesbot_conversations", status="active", owner="bot") == 1
    assert value(after, "salesbot_queue_jobs", queue=queues.TURNS, state="ready") == 0
    assert value(after, "salesbot_queue_jobs", queue=queues.TURNS, state="deferred") == 0
    assert value(after, "salesbot_inbox_spool_entries", state="pending") == 0

    # One observation per histogram; the buckets are cumulative and end in +Inf = count.
    for name, labels in [
        ("salesbot_turn_seconds", {}),
        ("salesbot_debounce_seconds", {}),
        ("salesbot_delivery_seconds", {"provider": "wazzup"}),
    ]:
        assert value(after, f"{name}_count", **labels) == 1
        buckets = [s for s in after if s.name == f"{name}_bucket" and {**s.labels, "le": ""} == {**labels, "le": ""}]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts)
        assert buckets[-1].labels["le"] == "+Inf"
        assert counts[-1] == 1
    # The customer's message waited at least the debounce window before its turn took it.
    debounce = pipeline.resources.settings.conversation.debounce_seconds
    assert value(after, "salesbot_debounce_seconds_sum") >= debounce


@pytest.mark.parametrize(
    "pipeline_overrides",
    [
        {
            "root": {
                "auth": AuthSettings(
                    api_token=API_TOKEN,
                    admin_password=TEST_SECRETS_ENV["ADMIN_PASSWORD"],
                    secret_key=TEST_SECRETS_ENV["SECRET_KEY"],
                    metrics_token=METRICS_TOKEN,
                )
            }
        }
    ],
)
async def test_metrics_need_the_api_token_or_the_scrape_token(pipeline: Pipeline) -> None:
    assert (await pipeline.client.get("/metrics")).status_code == 401
    for wrong in ("Bearer wrong-token", f"Basic {API_TOKEN}", f"Bearer {METRICS_TOKEN}x", "Bearer "):
        answer = await pipeline.client.get("/metrics", headers={"authorization": wrong})
        assert answer.status_code == 401, wrong
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "salesbot_" not in answer.text
    assert await scrape(pipeline.client, METRICS_TOKEN)
    assert await scrape(pipeline.client, API_TOKEN)


async def test_a_handoff_by_the_agent_is_counted(pipeline: Pipeline) -> None:
    pipeline.generator.handoff = True
    await pipeline.wazzup_text(CHAT, "I want to talk to a person")
    await pipeline.worker.drain()

    samples = await scrape(pipeline.client)

    assert value(samples, "salesbot_handoffs_total", reason="agent") == 1
    assert value(samples, "salesbot_turns_total", result="replied") == 1


async def test_webhooks_spooled_during_a_database_outage_are_counted_and_the_scrape_still_answers(
    pipeline: Pipeline,
) -> None:
    live = pipeline.resources
    with tempfile.TemporaryDirectory(prefix="nopg") as nowhere:
        dead_url = make_url(live.settings.database_url).set(query={"host": nowhere, "port": "5432"})
        engine = create_engine(dead_url.render_as_string(hide_password=False), pool_size=1)
        app = create_app(live.settings)
        app.state.resources = replace(live, engine=engine, sessionmaker=create_sessionmaker(engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_BASE_URL) as client:
            down = replace(pipeline, client=client)
            assert (await down.wazzup_text(CHAT, "Are you there?")).status_code == 200
            samples = await scrape(client)
        await engine.dispose()

    assert value(samples, "salesbot_webhooks_total", provider="wazzup", outcome="spooled") == 1
    assert value(samples, "salesbot_inbox_spool_entries", state="pending") == 1
    # The database gauges are missing from this scrape, and the scrape says so.
    assert value(samples, "salesbot_metrics_source_up", source="database") == 0
    assert value(samples, "salesbot_metrics_source_up", source="redis") == 1


async def test_recording_never_fails_the_caller_when_redis_is_gone(pipeline: Pipeline) -> None:
    from redis.asyncio import Redis

    # A client for a port nothing listens on: every command fails to connect.
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    previous = fleet.bind(dead)
    try:
        await metrics.inc(metrics.WEBHOOKS, provider=Channel.WAZZUP.value, outcome="accepted")
        await metrics.observe(metrics.TURN_SECONDS, 1.5)
    finally:
        fleet.bind(previous)
        await dead.aclose()
    assert await fleet.snapshot(pipeline.redis) == fleet.Snapshot()


async def test_label_names_are_checked_against_the_declaration(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="takes the labels"):
        await metrics.inc(metrics.WEBHOOKS, provider="wazzup")


async def test_llm_requests_tokens_and_cost_per_model_come_from_every_generation(pipeline: Pipeline) -> None:
    await pipeline.wazzup_text(CHAT, "hello")
    [conversation] = await pipeline.conversations()
    async with unit_of_work(pipeline.resources.sessionmaker) as session:
        # What turns record: a sent reply and a discarded draft by one model, a fallback answer by another.
        add_llm_usage(session, conversation.id, [usage("gpt-main", 2, 300, 40, "0.0031")], "sent")
        add_llm_usage(session, conversation.id, [usage("gpt-main", 1, 120, 10, "0.0012")], "discarded")
        add_llm_usage(session, conversation.id, [usage("backup", 1, 100, 20, "0.0005")], "sent")

    samples = await scrape(pipeline.client)

    assert value(samples, "salesbot_llm_requests_total", model="gpt-main") == 3
    assert value(samples, "salesbot_llm_tokens_total", model="gpt-main", direction="in") == 420
    assert value(samples, "salesbot_llm_tokens_total", model="gpt-main", direction="out") == 50
    assert value(samples, "salesbot_llm_cost_total", model="gpt-main") == pytest.approx(0.0043)
    assert value(samples, "salesbot_llm_requests_total", model="backup") == 1


def usage(model: str, requests: int, tokens_in: int, tokens_out: int, cost: str) -> LLMUsage:
    return LLMUsage(requests=requests, tokens_in=tokens_in, tokens_out=tokens_out, cost=Decimal(cost), model=model)


def test_production_refuses_a_weak_scrape_token_and_reads_both_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_secrets(monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318")
    monkeypatch.setenv("METRICS_TOKEN", "short")
    with pytest.raises(ValidationError, match="METRICS_TOKEN is shorter than 16 characters"):
        Settings(**PRODUCTION_OK)
    monkeypatch.setenv("METRICS_TOKEN", METRICS_TOKEN)
    settings = Settings(**PRODUCTION_OK)
    assert settings.auth.metrics_token.get_secret_value() == METRICS_TOKEN
    assert settings.otel_exporter_otlp_endpoint == "http://otel-collector:4318"
