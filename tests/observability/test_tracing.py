"""OpenTelemetry traces: one trace from the provider's webhook through the turn, the agent run and its LLM request to
the delivery and the provider send, exported over OTLP/HTTP to a local receiver that records what it got.

The real app, worker, agent (PydanticAI over HTTP to a local OpenAI-compatible stand-in) and OTLP exporter; only
the provider APIs are faked (respx) and the collector is a recording HTTP server.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from arq.connections import ArqRedis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import SecretStr
from pydantic_ai import models

from salesbot.agent.service import SalesAgentService
from salesbot.kit import tracing
from salesbot.kit.logging import KeyValueFormatter, get_logger
from salesbot.settings import LLMSettings
from tests.agent.test_llm_http import FakeLLM, llm_server
from tests.fakes.pipeline import Pipeline, wazzup_message

__all__ = ["llm_server"]

CHAT = "79990001122"


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP collector that keeps every export request."""

    url: str = ""
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)  # path, content type, body
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        found: list[Span] = []
        with self.lock:
            for _path, _type, body in self.requests:
                export = ExportTraceServiceRequest.FromString(body)
                for resource_spans in export.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        found.extend(scope_spans.spans)
        return found

    def service_names(self) -> set[str]:
        names: set[str] = set()
        with self.lock:
            for _path, _type, body in self.requests:
                for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                    for attribute in resource_spans.resource.attributes:
                        if attribute.key == "service.name":
                            names.add(attribute.value.string_value)
        return names


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.requests.append((self.path, self.headers.get("content-type", ""), body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        tracing.shutdown()
        server.shutdown()
        server.server_close()


@pytest.fixture
def pipeline_overrides(
    otlp: OtlpReceiver, llm_server: tuple[FakeLLM, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, dict[str, Any]]:
    """Tracing on before the pipeline's app is created; the LLM is the local stand-in (requests to it allowed)."""
    llm, base_url = llm_server
    llm.behaviours["sales-llm"] = "sales"
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)
    assert tracing.setup(otlp.url, service="salesbot-test", agent=True)
    settings = LLMSettings(model="sales-llm", base_url=base_url, api_key=SecretStr("sk-test-not-a-real-key"))
    return {"root": {"llm": settings, "otel_exporter_otlp_endpoint": otlp.url}}


def attribute(span: Span, key: str) -> str:
    for item in span.attributes:
        if item.key == key:
            return str(item.value.string_value or item.value.int_value)
    return ""


def ancestors(span: Span, by_id: dict[bytes, Span]) -> list[Span]:
    chain: list[Span] = []
    while span.parent_span_id and span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


async def test_one_trace_runs_from_the_webhook_through_the_turn_and_agent_to_the_provider_send(
    pipeline: Pipeline, otlp: OtlpReceiver, llm_server: tuple[FakeLLM, str]
) -> None:
    pipeline.worker.generator = SalesAgentService()
    # The provider's own trace context arrives with the webhook: the whole conversation joins it.
    incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await pipeline.client.post(
        f"/webhooks/wazzup/{pipeline.resources.settings.wazzup.webhook_secret.get_secret_value()}",
        json={"messages": [wazzup_message(CHAT, "Hello, do you sell printers?")]},
        headers={"traceparent": f"00-{incoming_trace}-00f067aa0ba902b7-01"},
    )
    assert response.status_code == 200
    await pipeline.worker.drain()
    assert len(pipeline.wazzup_api.sent) == 1
    assert llm_server[0].count("sales-llm") == 1
    tracing.flush()

    spans = otlp.spans()
    by_id = {span.span_id: span for span in spans}
    [webhook] = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER and "/webhooks/wazzup" in s.name]
    [turn] = [s for s in spans if s.name == "turn"]
    [deliver] = [s for s in spans if s.name == "deliver"]
    [agent_run] = [s for s in spans if s.name.startswith(("invoke_agent", "agent run"))]
    [llm_call] = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT and "/chat/completions" in _url(s)]
    [send] = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT and "/message" in _url(s)]

    assert webhook.trace_id.hex() == incoming_trace
    # The turn continues the webhook's trace (a child of its request span, and linked to it).
    assert turn.trace_id == webhook.trace_id
    assert turn.parent_span_id == webhook.span_id
    assert [link.span_id for link in turn.links] == [webhook.span_id]
    assert attribute(turn, "conversation") == attribute(deliver, "conversation") != ""
    # The agent run and its HTTP request to the LLM happen inside the turn.
    assert turn in ancestors(agent_run, by_id)
    assert agent_run in ancestors(llm_call, by_id)
    # The delivery job continues from the turn that wrote the reply; the provider send happens inside it.
    assert deliver.trace_id == webhook.trace_id
    assert deliver.parent_span_id == turn.span_id
    assert deliver in ancestors(send, by_id)
    assert {s.trace_id for s in (agent_run, llm_call, send)} == {webhook.trace_id}
    # Spans carry no message contents: the customer's words do not leave the system in traces.
    exported = b"".join(body for _path, _type, body in otlp.requests)
    assert b"do you sell printers" not in exported
    # Nor do credentials in URLs: the webhook's secret path segment is masked.
    assert pipeline.resources.settings.wazzup.webhook_secret.get_secret_value().encode() not in exported
    assert _url(webhook) == "https://bot.example.test/webhooks/wazzup/{redacted}"
    assert {(path, content_type) for path, content_type, _body in otlp.requests} == {
        ("/v1/traces", "application/x-protobuf")
    }
    assert otlp.service_names() == {"salesbot-test"}


async def test_a_burst_of_webhooks_is_one_turn_linked_to_each_of_them(pipeline: Pipeline, otlp: OtlpReceiver) -> None:
    pipeline.worker.generator = pipeline.generator  # the recording double: no LLM needed here
    for text in ("Hi", "I need chairs", "red ones"):
        assert (await pipeline.wazzup_text(CHAT, text)).status_code == 200
    await pipeline.worker.drain()
    tracing.flush()

    spans = otlp.spans()
    webhooks = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER and "/webhooks/wazzup" in s.name]
    [turn] = [s for s in spans if s.name == "turn"]
    assert len(webhooks) == 3
    assert len({s.trace_id for s in webhooks}) == 3  # three independent requests
    assert [link.span_id for link in turn.links] == [s.span_id for s in webhooks]
    assert (turn.trace_id, turn.parent_span_id) == (webhooks[0].trace_id, webhooks[0].span_id)
    assert [call.texts for call in pipeline.generator.calls] == [("Hi", "I need chairs", "red ones")]


async def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(otlp: OtlpReceiver, redis: ArqRedis) -> None:
    assert tracing.setup(otlp.url, service="salesbot-test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    log = get_logger("tests.tracing")
    try:
        log.info("outside.span")
        async with tracing.job_span(redis, "turn", job="turn:1"):
            log.info("inside.span")
    finally:
        logger.removeHandler(handler)
    tracing.flush()

    [turn] = [s for s in otlp.spans() if s.name == "turn"]
    outside, inside = stream.getvalue().splitlines()
    assert "trace_id=" not in outside
    assert f"trace_id={turn.trace_id.hex()}" in inside
    assert f"span_id={turn.span_id.hex()}" in inside


def test_a_trace_id_that_looks_like_a_phone_number_is_logged_as_it_is(otlp: OtlpReceiver) -> None:
    from opentelemetry import trace

    assert tracing.setup(otlp.url, service="salesbot-test")
    # Random ids are hex: some contain a run of digits the phone detector would mask (as in "5c3e022123780fab...").
    trace_id, span_id = int("5c3e022123780fab9c1d2e3f4a5b6c7d", 16), int("fa0501234567bcde", 16)
    context = trace.SpanContext(trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(1))
    record = logging.LogRecord("tests.tracing", logging.INFO, __file__, 1, "inside.span", None, None)
    with trace.use_span(trace.NonRecordingSpan(context)):
        line = KeyValueFormatter().format(record)
    assert "trace_id=5c3e022123780fab9c1d2e3f4a5b6c7d span_id=fa0501234567bcde" in line


def test_without_an_endpoint_nothing_of_opentelemetry_is_loaded() -> None:
    code = (
        "import sys\n"
        "from salesbot.app import create_app\n"
        "from salesbot.settings import Settings\n"
        "import salesbot.worker\n"
        "create_app(Settings())\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter',"
        " 'opentelemetry.instrumentation'))]\n"
        "assert not loaded, loaded\n"
    )
    env = {"SALESBOT_ENV_FILE": "", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def _url(span: Span) -> str:
    return attribute(span, "url.full") or attribute(span, "http.url")


@pytest.mark.parametrize(
    ("url", "exported"),
    [
        (
            "https://bot.example.test/webhooks/wazzup/wz-hook-3f9c2b7e4d1a48c6",
            "https://bot.example.test/webhooks/wazzup/{redacted}",
        ),
        (
            "https://api.telegram.org/bot123456:AAE-token-part-xyz/sendMessage",
            "https://api.telegram.org/{redacted}/sendMessage",
        ),
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
            "https://api.twilio.com/2010-04-01/Accounts/{redacted}/Messages.json",
        ),
        ("https://media.example.test/file.jpg?signature=abc&expires=1", "https://media.example.test/file.jpg"),
        ("https://api.wazzup24.com/v3/message", "https://api.wazzup24.com/v3/message"),
    ],
)
def test_urls_in_spans_lose_credentials(url: str, exported: str) -> None:
    assert tracing.scrub_url(url) == exported
