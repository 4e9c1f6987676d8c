"""Keyed hashes: what goes into Redis keys and logs cannot be reversed by hashing every phone number."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from salesbot.kit.hashing import short_hash, use_secret_key

PHONE = "+971501234567"


def test_the_hash_is_keyed_by_the_secret_key() -> None:
    use_secret_key("first-secret-key-0123456789abcdef")
    first = short_hash(PHONE)
    assert first == short_hash(PHONE)
    assert len(first) == 16
    assert len(short_hash(PHONE, length=32)) == 32
    assert first != hashlib.sha256(PHONE.encode()).hexdigest()[:16]
    use_secret_key("second-secret-key-0123456789abcdef")
    assert short_hash(PHONE) != first


def test_every_process_with_the_same_secret_key_computes_the_same_hash() -> None:
    """The API and the worker are separate processes: one that never opened resources reads SECRET_KEY itself."""
    secret = "shared-secret-key-0123456789abcdef"
    use_secret_key(secret)
    env = {**os.environ, "SECRET_KEY": secret, "SALESBOT_ENV_FILE": "", "SALESBOT_ENV": "test"}
    code = "from salesbot.kit.hashing import short_hash; print(short_hash('+971501234567'))"
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == short_hash(PHONE)
