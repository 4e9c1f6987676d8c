"""Stable, non-reversible identifiers for values that must not appear in logs or Redis keys (phone numbers).

A bare SHA-256 of a phone number is no protection: there are only so many numbers, and hashing them all takes
minutes. `short_hash` is therefore an HMAC keyed with a key derived from `SECRET_KEY`. Every process of one
deployment (API, worker) reads the same `SECRET_KEY`, so they compute the same Redis keys for the same phone;
`open_resources` sets the key from the process's settings (`use_secret_key`), and a process that never opened
resources (a CLI command) falls back to `get_settings()`.
"""

from __future__ import annotations

import hashlib
import hmac

# The derived key is only for identifiers: the session signer uses SECRET_KEY for something else.
_PURPOSE = b"salesbot.kit.hashing.short_hash.v1"

# The process's derived key (one entry, "key"); set by `use_secret_key`, else on first use from the settings.
_state: dict[str, bytes] = {}


def derive_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def use_secret_key(secret_key: str) -> None:
    """Key every later `short_hash` of this process with `secret_key` (SECRET_KEY)."""
    _state["key"] = derive_key(secret_key)


def _current_key() -> bytes:
    key = _state.get("key")
    if key is None:
        from salesbot.settings import get_settings

        key = _state["key"] = derive_key(get_settings().auth.secret_key.get_secret_value())
    return key


def short_hash(value: str, *, length: int = 16) -> str:
    """A keyed hash of `value` (hex, `length` characters): the same in every process with the same SECRET_KEY."""
    return hmac.new(_current_key(), value.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
