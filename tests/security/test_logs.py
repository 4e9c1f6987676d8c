"""No secret and no raw phone number or e-mail address in the logs of a whole conversation.

The conversation runs through the real app and a real worker with the real agent (offline responder): Wazzup
and Twilio customers who write their phone numbers and e-mail, replies, a delivery status, a failed send that is
retried, a manager's echo, an opt-out, and rejected webhooks (wrong secret, bad signature). Every log record is
rendered with salesbot's own formatter at DEBUG level and searched.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from salesbot.agent.service import generate_reply
from salesbot.kit.logging import KeyValueFormatter, configure_logging, get_logger, redact
from tests.fakes.pipeline import (
    TWILIO_TOKEN,
    WAZZUP_KEY,
    WAZZUP_SECRET,
    Pipeline,
    twilio_params,
    wazzup_message,
)
from tests.fakes.worker import PipelineWorker

WAZZUP_CHAT = "79161234567"
TWILIO_CHAT = "whatsapp:+14155550199"
EMAIL = "ivan.petrov@mail.example"
SPOKEN_PHONE = "+7 916 123-45-67"


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """The process's logging exactly as `salesbot serve`/`worker` configure it (at DEBUG), into a buffer."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    configure_logging("DEBUG")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, previous in quiet.items():
            logging.getLogger(name).setLevel(previous)


async def test_a_whole_conversation_logs_no_secret_and_no_contact_detail(
    pipeline: Pipeline, log_text: io.StringIO
) -> None:
    worker = PipelineWorker(pipeline.resources, generate_reply)
    settings = pipeline.resources.settings

    await pipeline.wazzup_text(WAZZUP_CHAT, f"Hello, I'm Ivan, {EMAIL}, phone {SPOKEN_PHONE}. Do you sell laptops?")
    await pipeline.twilio(twilio_params(TWILIO_CHAT, "Hi! Call me on +1 415 555 0199, I need a printer"))
    pipeline.wazzup_api.fail_next.append((500, {"error": "UNKNOWN_ERROR", "description": f"chat {WAZZUP_CHAT}"}))
    await worker.drain()
    sent = pipeline.wazzup_api.sent
    assert sent, "the conversation did not reach the provider"
    assert pipeline.twilio_api.sent
    status = {
        "messageId": sent[0].provider_message_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "status": "delivered",
    }
    await pipeline.wazzup({"statuses": [status]})
    await pipeline.wazzup(
        {"messages": [wazzup_message(WAZZUP_CHAT, "Anna here", isEcho=True, status="sent", authorName="Anna")]}
    )
    await pipeline.twilio(twilio_params(TWILIO_CHAT, "STOP"))
    await pipeline.wazzup_text(WAZZUP_CHAT, "hello?", secret="wrong-secret")
    await pipeline.twilio(twilio_params(TWILIO_CHAT, "forged"), signature="forged")
    await worker.drain()

    logs = log_text.getvalue()
    assert "outbox.sent" in logs
    assert "inbox.message_stored" in logs
    secrets = {
        "WAZZUP_WEBHOOK_SECRET": WAZZUP_SECRET,
        "WAZZUP_API_KEY": WAZZUP_KEY,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "API_TOKEN": settings.auth.api_token.get_secret_value(),
        "ADMIN_PASSWORD": settings.auth.admin_password.get_secret_value(),
        "SECRET_KEY": settings.auth.secret_key.get_secret_value(),
    }
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == []
    contact = [WAZZUP_CHAT, "9161234567", SPOKEN_PHONE, "+1 415 555 0199", "4155550199", "14155550199", EMAIL]
    assert [value for value in contact if value in logs] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("UNKNOWN_ERROR: chat 79161234567", "UNKNOWN_ERROR: chat [phone]"),
        ("21211: 'To' whatsapp:+14155550199 is not valid", "21211: 'To' whatsapp:[phone] is not valid"),
        ("call +7 916 123-45-67 today", "call [phone] today"),
        ("reply to ivan.petrov@mail.example", "reply to [email]"),
        ("on 2026-11-21 at 10:00, 3 units, delay 0.25", "on 2026-11-21 at 10:00, 3 units, delay 0.25"),
        ("chat=5d3cfc29547aa2ff id=SM2c4a1234567890", "chat=5d3cfc29547aa2ff id=SM2c4a1234567890"),
        ("redirect to https://wa.me/971501234567?text=hi", "redirect to https://wa.me/[phone]?text=hi"),
        ("GET /send?phone=79161234567 failed", "GET /send?phone=[phone] failed"),
        ("customer wrote тел79161234567", "customer wrote тел[phone]"),
        ("رقم ٠٥٠١٢٣٤٥٦٧", "رقم [phone]"),
        ("order 2024-118: 2 x 4500 AED, SKU LP-1001", "order 2024-118: 2 x 4500 AED, SKU LP-1001"),
    ],
)
def test_contact_details_inside_free_text_are_masked(text: str, expected: str) -> None:
    """A provider's error text or an exception message may carry a number or address: the formatter masks it."""
    assert redact(text) == expected
    record = logging.makeLogRecord({"msg": "outbox.retry_scheduled", "levelno": 30, "levelname": "WARNING"})
    record.error = text
    assert expected.split()[-1] in KeyValueFormatter().format(record)


def test_the_log_filter_reads_national_numbers_in_the_business_region(log_text: io.StringIO) -> None:
    """`configure_logging` takes PHONE_DEFAULT_REGION: a Qatari mobile written nationally is masked for a QA
    business, and stays for a UAE business (where it is not a number)."""
    log = get_logger("tests.security")
    configure_logging("DEBUG", phone_region="QA")
    logging.getLogger().handlers[0].setStream(log_text)  # type: ignore[attr-defined]
    log.warning("outbox.retry_scheduled", error="invalid recipient 5512 3456", chats=["wa.me/97455123456"])
    line = log_text.getvalue()
    assert "5512 3456" not in line
    assert "97455123456" not in line
    assert "invalid recipient [phone]" in line
    assert redact("invalid recipient 5512 3456") == "invalid recipient 5512 3456"
