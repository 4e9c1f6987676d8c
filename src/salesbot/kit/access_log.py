"""uvicorn's access log, with the secrets some request lines carry masked.

The Wazzup webhook authenticates by a secret in its path, Meta's verification handshake sends its verify token in
the query string and signed document links carry their signature there; the simulator polls with the customer's
phone in the query. An access log that printed request lines as they came would hand those to whoever reads it.

Phone numbers are masked by the log formatter, in what a client could have typed only (`access_message`): the
peer's address, which the whole-line scan took for a phone number whenever a real client address had enough
digits ("203.0.113.45:51234"), costs the detector's full work on every request otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable

ACCESS_LOGGER = "uvicorn.access"
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


def access_message(record: logging.LogRecord, redact: Callable[[str], str]) -> str | None:
    """uvicorn's access line `client - "METHOD target HTTP/version" status` with `redact` applied to each part but
    the client's socket address; None for any other record (or a client that is not an IP address and port, which
    the caller then redacts with the rest of the line)."""
    args = record.args
    if record.name != ACCESS_LOGGER or not isinstance(args, tuple) or not args or not _is_socket_address(args[0]):
        return None
    return str(record.msg) % (args[0], *(redact(arg) if isinstance(arg, str) else arg for arg in args[1:]))


def _is_socket_address(client: object) -> bool:
    """The peer (or a trusted proxy's client) as uvicorn reports it: "203.0.113.45:51234", "2001:db8::1:443"."""
    if not isinstance(client, str):
        return False
    host, _, port = client.rpartition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port.isdigit()


def install_access_log_masking() -> None:
    logging.getLogger(ACCESS_LOGGER).addFilter(SecretMaskingFilter())
