"""Structured logging on the standard library: dotted event names plus key=value fields.

Usage: ``log = get_logger(__name__); log.info("inbox.duplicate_dropped", provider="wazzup", chat=chat_hash)``.
Fields are rendered as JSON-safe ``key=value`` pairs; callers pass hashed chat keys, never raw phone numbers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from salesbot.kit import tracing
from salesbot.kit.access_log import access_message
from salesbot.kit.phones import DEFAULT_REGION, PhoneDetector

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Contact details that reach a log line inside text we do not control (a provider's error description, an
# exception message, a URL) are masked: phone numbers, found by the one phone detector (wa.me links, numbers glued
# to words, Arabic-Indic digits...), and e-mail addresses.
# An address starts where a word starts: matching from inside a long token would make the scan quadratic.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DEFAULT_PHONES = PhoneDetector()


def redact(text: str, phones: PhoneDetector | None = None) -> str:
    """`text` with phone numbers and e-mail addresses replaced by [phone] / [email]."""
    return (phones or _DEFAULT_PHONES).redact(_EMAIL.sub("[email]", text))


class KeyValueFormatter(logging.Formatter):
    def __init__(self, phones: PhoneDetector | None = None) -> None:
        super().__init__()
        # The business's region (PHONE_DEFAULT_REGION) reads national numbers as the masker does.
        self._phones = phones or _DEFAULT_PHONES

    def _redact(self, text: str) -> str:
        return redact(text, self._phones)

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _RESERVED}
        message = access_message(record, self._redact)
        if message is None:
            message = self._redact(record.getMessage())
        head = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} {message}"
        parts = [head] + [f"{key}={_render(value, self._phones)}" for key, value in fields.items()]
        ids = tracing.current_ids()
        if ids is not None:
            # Hex ids of our own making, never masked: a random id can contain a run of digits that looks like a
            # phone number, and a masked id cannot be found in the tracing backend.
            parts += [f"trace_id={ids[0]}", f"span_id={ids[1]}"]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info), self._phones)
        return line


def _render(value: Any, phones: PhoneDetector) -> str:
    if isinstance(value, str):
        text = redact(value, phones)
        if text and " " not in text and "=" not in text:
            return text
        return json.dumps(text, ensure_ascii=False)
    return redact(json.dumps(value, default=str, ensure_ascii=False), phones)


class EventLogger:
    """A thin wrapper that turns keyword arguments into structured fields."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            safe = {f"f_{k}" if k in _RESERVED else k: v for k, v in fields.items()}
            self._logger.log(level, event, extra=safe, exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, False, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, True, fields)


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))


def configure_logging(level: str = "INFO", *, phone_region: str = DEFAULT_REGION) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(PhoneDetector(phone_region)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs full request URLs, which can carry secrets (Wazzup webhook paths, Twilio SIDs).
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "hpack", "pgserver", "arq.worker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
