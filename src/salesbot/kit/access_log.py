"""uvicorn's access log, with the secrets some request lines carry masked.

The Wazzup webhook authenticates by a secret in its path, Meta's verification handshake sends its verify token in
the query string and signed document links carry their signature there; the simulator polls with the customer's
phone in the query. An access log that printed request lines as they came would hand those to whoever reads it.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# /webhooks/wazzup/<secret>
_SECRET_PATH = re.compile(r"(/webhooks/wazzup/)[^/?#\s]+")
# ?hub.verify_token=...&signature=...&token=...; `phone=` is how the simulator and the API filters name a customer.
_SECRET_QUERY = re.compile(
    r"([?&](?:hub\.verify_token|verify_token|token|access_token|signature|sig|key|phone)=)[^&#\s]*", re.I
)


def mask_request_target(target: str) -> str:
    return _SECRET_QUERY.sub(rf"\g<1>{MASK}", _SECRET_PATH.sub(rf"\g<1>{MASK}", target))


class SecretMaskingFilter(logging.Filter):
    """Rewrites the request target of uvicorn access records: `(client, method, target, http_version, status)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_request_target(args[2]), *args[3:])
        return True


def install_access_log_masking() -> None:
    logging.getLogger("uvicorn.access").addFilter(SecretMaskingFilter())
