"""The real HTTP path to an LLM: a tiny OpenAI-compatible chat-completions server on 127.0.0.1.

It stands in for OpenRouter/OpenAI/vLLM: one model name answers like a sales LLM (tool call, then a reply that
uses PII placeholders), others fail with 500, 429 or by being too slow, so the fallback chain is exercised.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_ai import models
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.eval.runner import ChatDriver
from salesbot.agent.service import SalesAgentService
from salesbot.models import Author, Channel, Direction, Message
from salesbot.settings import Settings

SLOW_SECONDS = 3.0


@dataclass
class FakeLLM:
    """Behaviour per model name: "sales" (a scripted assistant), "500", "429" or "slow"."""

    behaviours: dict[str, str]
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, model: str) -> int:
        return sum(1 for request in self.requests if request.get("model") == model)

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = body.get("model", "")
        behaviour = self.behaviours.get(model, "500")
        if behaviour == "500":
            return 500, {"error": {"message": "internal error", "type": "server_error"}}
        if behaviour == "429":
            return 429, {"error": {"message": "rate limited", "type": "rate_limit_exceeded"}}
        if behaviour == "slow":
            time.sleep(SLOW_SECONDS)
        return 200, self._sales_answer(model, body["messages"])

    @staticmethod
    def _sales_answer(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        user_text = "\n".join(
            part if isinstance(part, str) else json.dumps(part)
            for message in messages
            if message["role"] == "user"
            for part in ([message["content"]] if isinstance(message["content"], str) else message["content"])
        )
        email = re.findall(r"\[EMAIL_\d+\]", user_text)
        phone = re.findall(r"\[PHONE_\d+\]", user_text)
        has_tool_result = any(message["role"] == "tool" for message in messages)
        if not has_tool_result and email:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "save_customer_details",
                            "arguments": json.dumps({"name": "Olga", "email": email[-1]}),
                        },
                    }
                ],
            }
            finish = "tool_calls"
        else:
            contact = f" We'll send it to {email[-1]} and call {phone[-1]} if needed." if email and phone else ""
            message = {"role": "assistant", "content": f"Thank you! I've noted your details.{contact}"}
            finish = "stop"
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_790_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338},
        }


def _handler(llm: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw)
            with llm.lock:
                llm.raw_bodies.append(raw)
                llm.requests.append(body)
            status, payload = llm.respond(body)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def llm_server() -> Iterator[tuple[FakeLLM, str]]:
    llm = FakeLLM(behaviours={})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(llm))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield llm, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allow_http_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # Requests to the local stand-in server only; the suite otherwise forbids real model requests.
    monkeypatch.setattr(models, "ALLOW_MODEL_REQUESTS", True)


def llm_settings(settings: Settings, base_url: str, model: str, *fallbacks: str, timeout: float = 5.0) -> Settings:
    llm = settings.llm.model_copy(
        update={
            "model": model,
            "base_url": base_url,
            "api_key": SecretStr("sk-test-not-a-real-key"),
            "fallback_models": list(fallbacks),
            "request_timeout_seconds": timeout,
        }
    )
    return settings.model_copy(update={"llm": llm})


RAW_PII = [
    "olga.k@globex.example",
    "+971 50 123 4567",
    "971501234567",
    "+44 20 7946 0958",
    "442079460958",
    "old.address@corp.example",
]


@pytest.mark.usefixtures("allow_http_models")
async def test_llm_server_never_receives_raw_pii_and_the_customer_gets_real_values(
    catalog_session: AsyncSession, settings: Settings, llm_server: tuple[FakeLLM, str]
) -> None:
    llm, base_url = llm_server
    llm.behaviours["sales-llm"] = "sales"
    driver = ChatDriver(catalog_session, SalesAgentService(), llm_settings(settings, base_url, "sales-llm"))
    conversation = await driver.start()
    assert driver.customer is not None
    driver.customer.email = "old.address@corp.example"
    catalog_session.add(
        Message(
            conversation_id=conversation.id,
            channel=Channel.CONSOLE,
            direction=Direction.INBOUND,
            author=Author.CUSTOMER,
            text="my office line is +44 20 7946 0958",
        )
    )
    await catalog_session.flush()

    reply = await driver.say("Hi, I'm Olga: olga.k@globex.example, mobile +971 50 123 4567. Please send a quote.")

    assert len(llm.requests) == 2  # the tool call, then the answer
    for raw in llm.raw_bodies:
        text = raw.decode()
        digits = re.sub(r"\D", "", json.loads(raw).__repr__())
        for value in RAW_PII:
            assert value not in text
            if value.replace("+", "").isdigit():
                assert value not in digits
    assert reply.text == (
        "Thank you! I've noted your details. "
        "We'll send it to olga.k@globex.example and call +971 50 123 4567 if needed."
    )
    assert driver.customer.email == "olga.k@globex.example"
    assert (reply.model, reply.fallback_used) == ("sales-llm", False)
    assert reply.tokens_in == 2 * 321
    assert reply.tokens_out == 2 * 17
    assert reply.tool_calls[0]["tool"] == "save_customer_details"
    assert reply.tool_calls[0]["outcome"] == "ok"


@pytest.mark.usefixtures("allow_http_models")
@pytest.mark.parametrize(
    ("primary", "backup", "answered_by"),
    [
        ("500", "sales", "backup-llm"),
        ("429", "sales", "backup-llm"),
        ("slow", "sales", "backup-llm"),
        ("500", "429", "offline"),
        ("slow", "500", "offline"),
    ],
)
async def test_failing_llms_fall_back_and_the_turn_records_who_answered(
    catalog_session: AsyncSession,
    settings: Settings,
    llm_server: tuple[FakeLLM, str],
    primary: str,
    backup: str,
    answered_by: str,
) -> None:
    llm, base_url = llm_server
    llm.behaviours.update({"primary-llm": primary, "backup-llm": backup})
    configured = llm_settings(settings, base_url, "primary-llm", "backup-llm", timeout=0.5)
    driver = ChatDriver(catalog_session, SalesAgentService(), configured)

    reply = await driver.say("Hello, how much is the HP-LJP4003DN?")

    assert reply.model == answered_by
    assert reply.fallback_used is True
    assert reply.handoff is False
    assert reply.text.strip()
    if answered_by == "offline":
        assert "1349.00 AED" in reply.text  # the offline responder looked the price up
    # One attempt per failing model per turn: no SDK retries and no second wait for a model that already failed.
    assert [request["model"] for request in llm.requests[:2]] == ["primary-llm", "backup-llm"]
    assert llm.count("primary-llm") == 1
    if backup != "sales":
        assert llm.count("backup-llm") == 1
