"""The access log masks secrets and phone numbers in request lines, on the record uvicorn really emits."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from salesbot.kit.access_log import SecretMaskingFilter, mask_request_target
from salesbot.kit.logging import KeyValueFormatter


@pytest.mark.parametrize(
    ("target", "masked"),
    [
        ("/webhooks/wazzup/wz-hook-3f9c2b7e4d1a", "/webhooks/wazzup/***"),
        ("/webhooks/wazzup/wz-hook-3f9c?x=1", "/webhooks/wazzup/***?x=1"),
        (
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token=v3r1fy&hub.challenge=1158201444",
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token=***&hub.challenge=1158201444",
        ),
        (
            "/api/v1/quotes/7.pdf?expires=1767225600&signature=9f86d08",
            "/api/v1/quotes/7.pdf?expires=1767225600&signature=***",
        ),
        ("/simulator/api/replies?phone=%2B971501234567&after=1-0", "/simulator/api/replies?phone=***&after=1-0"),
        ("/api/v1/conversations?status=active", "/api/v1/conversations?status=active"),
        ("/webhooks/twilio", "/webhooks/twilio"),
    ],
)
def test_request_targets_lose_their_secrets(target: str, masked: str) -> None:
    assert mask_request_target(target) == masked


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter())
    logger = logging.getLogger("uvicorn.access")
    masking = SecretMaskingFilter()
    logger.addFilter(masking)
    logger.addHandler(handler)
    # Other tests run uvicorn servers, whose logging config sets this logger's level and may disable it.
    level, disabled = logger.level, logger.disabled
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(masking)
        logger.setLevel(level)
        logger.disabled = disabled


def test_an_access_record_is_logged_with_the_secret_masked(access_log: io.StringIO) -> None:
    # The call uvicorn's httptools/h11 protocols make for every request.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.7:53122", "POST", "/webhooks/wazzup/wz-hook-3f9c2b7e", "1.1", 200
    )
    line = access_log.getvalue()
    assert '"POST /webhooks/wazzup/*** HTTP/1.1" 200' in line
    assert "wz-hook-3f9c2b7e" not in line


def test_a_phone_number_in_the_request_line_is_masked_and_the_clients_address_is_kept(
    access_log: io.StringIO,
) -> None:
    # A real client address has the digits of a phone number; a phone in the path is what a client typed.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "203.0.113.45:51234", "GET", "/lookup/+971501234567", "1.1", 404
    )
    line = access_log.getvalue()
    assert '203.0.113.45:51234 - "GET /lookup/[phone] HTTP/1.1" 404' in line
    assert "971501234567" not in line


@pytest.mark.parametrize("client", ["+971501234567:443", "971501234567", "+971 50 123 4567:80"])
def test_a_client_field_that_is_not_an_ip_address_is_masked_like_any_text(access_log: io.StringIO, client: str) -> None:
    # What a misconfigured proxy could forward as the client (X-Forwarded-For is only ever as good as the proxy).
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', client, "GET", "/", "1.1", 200)
    line = access_log.getvalue()
    assert "[phone]" in line
    assert "1234567" not in line
