"""OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Unset, nothing here imports OpenTelemetry and every helper returns at once: no cost, no Redis traffic.

Set (`setup`, called by `create_app` and the worker's startup), a process exports its spans in batches to
`{OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces` (`OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_SERVICE_NAME` are honoured) and
instruments:
- the API's requests (server spans, the caller's `traceparent` continued), except health checks and /metrics;
- every outgoing httpx request (provider sends, media downloads, the LLM client's calls);
- with `agent=True` (the worker), every PydanticAI agent run, its model requests and tool calls, without message
  contents (they are the customer's words, and traces leave the system);
- the jobs: a webhook hands its span context over to the job it scheduled through Redis (`hand_over`, a short
  list per job key), and the job's span (`job_span`) continues the first webhook's trace and links to every
  other webhook of the burst. A job that starts before the webhook handed over (or after Redis lost the list)
  starts a trace of its own.

The tracer provider is this module's, not OpenTelemetry's global one, so it can be replaced and shut down (tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

KEY_PREFIX = "sb:trace:"
# A burst longer than this links to its latest webhooks only.
MAX_HANDED_OVER = 20
HANDOVER_TTL_MS = 3600 * 1000
# Requests that are polled, not worth a trace.
EXCLUDED_URLS = "healthz,readyz,metrics"

# URLs leave the system in spans: a path segment that looks like a credential (the Wazzup webhook secret, a bot
# token, an account SID) is masked and the query string dropped.
_OPAQUE_SEGMENT = re.compile(r"(?<=/)(?=[^/?#]*\d)[^/?#]{16,}")
_URL_ATTRIBUTES = ("url.full", "http.url", "http.target", "url.path")

_provider: TracerProvider | None = None
_agent_instrumented = False


def enabled() -> bool:
    return _provider is not None


def setup(endpoint: str, *, service: str, agent: bool = False) -> bool:
    """Start exporting to `endpoint` (nothing when empty); idempotent. Returns whether tracing is on."""
    global _provider, _agent_instrumented
    if _provider is None:
        if not endpoint:
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
        for instrumentor in _http_instrumentors():
            instrumentor.instrument(
                tracer_provider=provider, request_hook=_client_hook, async_request_hook=_async_client_hook
            )
        _provider = provider
    if agent and not _agent_instrumented:
        from pydantic_ai import Agent, InstrumentationSettings

        Agent.instrument_all(
            InstrumentationSettings(tracer_provider=_provider, include_content=False, include_binary_content=False)
        )
        _agent_instrumented = True
    return True


def shutdown() -> None:
    """Export what is buffered and stop tracing (the process's end; tests between cases)."""
    global _provider, _agent_instrumented
    provider, _provider = _provider, None
    if provider is None:
        return
    for instrumentor in _http_instrumentors():
        instrumentor.uninstrument()
    if _agent_instrumented:
        from pydantic_ai import Agent

        Agent.instrument_all(False)
        _agent_instrumented = False
    provider.shutdown()


def _http_instrumentors() -> list[Any]:
    """httpx, and httpx2 where installed: the OpenAI SDK (the LLM client) sends with httpx2."""
    from opentelemetry.instrumentation import httpx as instrumentation

    instrumentors: list[Any] = [instrumentation.HTTPXClientInstrumentor()]
    if getattr(instrumentation, "_httpx2_module", None) is not None:
        instrumentors.append(instrumentation.HTTPX2ClientInstrumentor())
    return instrumentors


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def instrument_app(app: Any) -> None:
    """Server spans for the FastAPI `app`'s requests (nothing when tracing is off)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, excluded_urls=EXCLUDED_URLS, server_request_hook=_server_hook
    )


def scrub_url(url: str) -> str:
    """`url` without its query string and with credential-like path segments masked."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], _OPAQUE_SEGMENT.sub("{redacted}", parts.path), "", "")
    )


def _scrub_span(span: Any) -> None:
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str):
            span.set_attribute(key, scrub_url(value))
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def _server_hook(span: Any, scope: dict[str, Any]) -> None:
    if span is not None and span.is_recording():
        _scrub_span(span)


def _client_hook(span: Any, request: Any) -> None:
    if span is not None and span.is_recording():
        _scrub_span(span)


async def _async_client_hook(span: Any, request: Any) -> None:
    _client_hook(span, request)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the active span, for log lines; None when tracing is off or no span is."""
    if _provider is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _key(job: str) -> str:
    return KEY_PREFIX + job


async def hand_over(redis: Redis, *jobs: str) -> None:
    """Leave the active span's context for the jobs keyed `jobs` (e.g. "turn:42"); never fails the caller."""
    if _provider is None or not jobs:
        return
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.rpush(_key(job), traceparent)
                pipe.ltrim(_key(job), -MAX_HANDED_OVER, -1)
                pipe.pexpire(_key(job), HANDOVER_TTL_MS)
            await pipe.execute()
    except (RedisError, OSError):
        return


async def _take_over(redis: Redis, job: str) -> list[str]:
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.lrange(_key(job), 0, -1)
            pipe.delete(_key(job))
            raw, _deleted = await pipe.execute()
    except (RedisError, OSError):
        return []
    return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]


@asynccontextmanager
async def job_span(redis: Redis, name: str, *, job: str, **attributes: str | int) -> AsyncIterator[None]:
    """Run the block in a span named `name` that continues the trace handed over for `job` (see module doc)."""
    provider = _provider
    if provider is None:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    contexts = [
        trace.get_current_span(extract({"traceparent": tp})).get_span_context() for tp in await _take_over(redis, job)
    ]
    contexts = [context for context in contexts if context.is_valid]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0])) if contexts else None
    links = [trace.Link(context) for context in contexts]
    tracer = provider.get_tracer("salesbot")
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, links=links, attributes=attributes
    ):
        yield
