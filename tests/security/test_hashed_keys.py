"""Redis keys that are per phone number carry a keyed hash of it (SECRET_KEY), never a bare SHA-256."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from salesbot.kit.hashing import derive_key
from salesbot.messaging.console import read_replies
from salesbot.settings import AuthSettings
from tests.conftest import TEST_SECRETS_ENV
from tests.fakes.pipeline import Pipeline

SECRET = "hashed-keys-secret-key-0123456789abcdef"
PHONE = "+971501234567"


@pytest.mark.parametrize(
    "pipeline_overrides",
    [
        {
            "root": {
                "auth": AuthSettings(
                    secret_key=SecretStr(SECRET),
                    api_token=SecretStr(TEST_SECRETS_ENV["API_TOKEN"]),
                    admin_password=SecretStr(TEST_SECRETS_ENV["ADMIN_PASSWORD"]),
                )
            },
            "outbox": {"pacing_seconds": 0.05},
        }
    ],
)
async def test_redis_keys_hold_no_bare_sha256_of_the_phone(pipeline: Pipeline) -> None:
    pipeline.generator.reply = lambda request: "Hello from the shop"
    await pipeline.console(PHONE, "hi")
    await pipeline.worker.drain()

    keys = sorted(key.decode() for key in await pipeline.redis.keys("*"))
    bare = hashlib.sha256(PHONE.encode()).hexdigest()
    assert [key for key in keys if bare[:16] in key or PHONE.lstrip("+") in key] == []
    keyed = hmac.new(derive_key(SECRET), PHONE.encode(), hashlib.sha256).hexdigest()[:16]
    assert f"sb:console:replies:{keyed}" in keys
    assert f"sb:outbox:pace:console:{keyed}" in keys
    # The worker wrote the stream, the API reads it: both computed the same key.
    assert [reply.text for reply in await read_replies(pipeline.redis, PHONE)] == ["Hello from the shop"]
