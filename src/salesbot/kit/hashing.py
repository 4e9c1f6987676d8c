"""Stable, non-reversible identifiers for values that must not appear in logs or Redis keys (phone numbers)."""

from __future__ import annotations

import hashlib


def short_hash(value: str, *, length: int = 16) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:length]
