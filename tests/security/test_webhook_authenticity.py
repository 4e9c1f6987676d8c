"""Every provider route proves who is calling, and every secret is compared in constant time.

- Each `/webhooks/...` route of the route table refuses a caller without the provider's credential (Wazzup: the
  secret in the path, 404; Twilio: `X-Twilio-Signature`, 403; console: 404 unless the console is on), whatever
  the body, and stores nothing.
- The secret material of each check (Wazzup path secret, Twilio signature, API token, admin credentials) goes
  through `hmac.compare_digest`: a spy on it sees the configured secret in every comparison.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select

from salesbot.app import create_app
from salesbot.messaging.meta import compute_signature as meta_signature
from salesbot.models import Message, PaymentEvent
from salesbot.settings import StripeSettings
from tests.fakes.pipeline import (
    META_APP_SECRET,
    META_PHONE_NUMBER_ID,
    META_VERIFY_TOKEN,
    PUBLIC_BASE_URL,
    TWILIO_TOKEN,
    WAZZUP_SECRET,
    Pipeline,
    twilio_params,
    wazzup_message,
)
from tests.security.test_route_auth import walk

BODY = json.dumps({"messages": [wazzup_message("79990001122", "hello")]}).encode()
STRIPE_BODY = (Path(__file__).parents[1] / "fixtures" / "stripe" / "checkout.session.completed.json").read_bytes()
META_BODY = json.dumps(
    {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": META_PHONE_NUMBER_ID,
                            },
                            "messages": [
                                {
                                    "from": "972987654321",
                                    "id": "wamid.x1",
                                    "timestamp": "1697043223",
                                    "type": "text",
                                    "text": {"body": "hi"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
).encode()


async def stored(pipeline: Pipeline) -> int:
    async with pipeline.resources.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


STRIPE = StripeSettings(webhook_secret=SecretStr("whsec_authenticity_suite_5c1e"))


@pytest.mark.parametrize("pipeline_overrides", [{"root": {"console_enabled": False, "stripe": STRIPE}}])
async def test_every_webhook_route_refuses_an_unauthenticated_caller(pipeline: Pipeline) -> None:
    routes = sorted({e.path for e in walk(create_app(pipeline.resources.settings).routes)})
    webhooks = [path for path in routes if path.startswith("/webhooks/")]
    assert webhooks == [
        "/webhooks/console",
        "/webhooks/meta",
        "/webhooks/stripe",
        "/webhooks/twilio",
        "/webhooks/twilio/status",
        "/webhooks/wazzup/{secret}",
    ]
    form = "&".join(f"{k}={v}" for k, v in twilio_params("whatsapp:+14155550123", "hi")).encode()
    attempts = {
        "/webhooks/wazzup/{secret}": [
            ("/webhooks/wazzup/wrong", {}, BODY),
            ("/webhooks/wazzup/" + WAZZUP_SECRET[:-1], {}, BODY),  # all but the last character
            ("/webhooks/wazzup/" + WAZZUP_SECRET + "x", {}, BODY),
            ("/webhooks/wazzup/%20", {}, BODY),
        ],
        "/webhooks/twilio": [
            ("/webhooks/twilio", {}, form),
            ("/webhooks/twilio", {"x-twilio-signature": "AAAA"}, form),
            ("/webhooks/twilio", {"x-twilio-signature": TWILIO_TOKEN}, form),
        ],
        "/webhooks/twilio/status": [
            ("/webhooks/twilio/status", {}, b"MessageSid=SM1&MessageStatus=delivered"),
            ("/webhooks/twilio/status", {"x-twilio-signature": "AAAA"}, b"MessageSid=SM1&MessageStatus=failed"),
        ],
        "/webhooks/console": [("/webhooks/console", {}, b'{"phone": "+15550100", "text": "hi"}')],
        "/webhooks/meta": [
            ("/webhooks/meta", {}, META_BODY),
            ("/webhooks/meta", {"x-hub-signature-256": "sha256=" + "0" * 64}, META_BODY),
            ("/webhooks/meta", {"x-hub-signature-256": meta_signature(META_VERIFY_TOKEN, META_BODY)}, META_BODY),
            ("/webhooks/meta", {"x-hub-signature-256": META_APP_SECRET}, META_BODY),
        ],
        "/webhooks/stripe": [
            ("/webhooks/stripe", {}, STRIPE_BODY),
            ("/webhooks/stripe", {"stripe-signature": f"t={int(time.time())},v1={'0' * 64}"}, STRIPE_BODY),
            ("/webhooks/stripe", {"stripe-signature": "whsec_authenticity_suite_5c1e"}, STRIPE_BODY),
        ],
    }
    assert sorted(attempts) == webhooks
    statuses = []
    for route in webhooks:
        for path, headers, body in attempts[route]:
            headers = {"content-type": "application/x-www-form-urlencoded", **headers}
            response = await pipeline.client.post(path, content=body, headers=headers)
            statuses.append((path, response.status_code))
    expected = {"/webhooks/twilio": 403, "/webhooks/twilio/status": 403, "/webhooks/meta": 403, "/webhooks/stripe": 400}
    assert statuses == [(path, expected.get(path, 404)) for path, _status in statuses]
    assert await stored(pipeline) == 0
    async with pipeline.resources.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PaymentEvent)) == 0


@given(secret=st.text(min_size=0, max_size=80).filter(lambda s: s != WAZZUP_SECRET))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_other_wazzup_secret_is_accepted(secret: str) -> None:
    from salesbot.messaging.base import WebhookRejectedError, WebhookRequest
    from salesbot.messaging.wazzup import WazzupProvider
    from salesbot.settings import WazzupSettings

    provider = WazzupProvider(WazzupSettings(webhook_secret=WAZZUP_SECRET), httpx.AsyncClient())
    request = WebhookRequest(path="/", query="", headers={}, body=b"", path_params={"secret": secret})
    with pytest.raises(WebhookRejectedError):
        provider.verify(request)


Comparison = tuple[bytes | str, bytes | str]


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[Comparison]:
    """Every `hmac.compare_digest` call (still answered by the real function)."""
    seen: list[Comparison] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return seen


def compared(seen: list[Comparison], secret: str) -> bool:
    token = secret.encode()
    return any(
        token in (a if isinstance(a, bytes) else a.encode()) or token in (b if isinstance(b, bytes) else b.encode())
        for a, b in seen
    )


async def test_wazzup_secret_is_compared_in_constant_time(pipeline: Pipeline, comparisons: list[Comparison]) -> None:
    assert (await pipeline.wazzup(BODY)).status_code == 200
    assert compared(comparisons, WAZZUP_SECRET)


async def test_twilio_signature_is_compared_in_constant_time(pipeline: Pipeline, comparisons: list[Comparison]) -> None:
    from salesbot.messaging.twilio import compute_signature

    params = twilio_params("whatsapp:+14155550123", "hi")
    signature = compute_signature(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio", params)
    assert (await pipeline.twilio(params)).status_code == 200
    assert compared(comparisons, signature)


async def test_meta_signature_and_verify_token_are_compared_in_constant_time(
    pipeline: Pipeline, comparisons: list[Comparison]
) -> None:
    signature = meta_signature(META_APP_SECRET, META_BODY)
    response = await pipeline.client.post(
        "/webhooks/meta", content=META_BODY, headers={"x-hub-signature-256": signature}
    )
    assert response.status_code == 200
    assert compared(comparisons, signature)
    comparisons.clear()
    query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    assert (await pipeline.client.get("/webhooks/meta", params=query)).status_code == 403
    assert compared(comparisons, META_VERIFY_TOKEN)


async def test_api_token_is_compared_in_constant_time(pipeline: Pipeline, comparisons: list[Comparison]) -> None:
    token = pipeline.resources.settings.auth.api_token.get_secret_value()
    response = await pipeline.client.get("/api/v1/stats", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert compared(comparisons, token)
    comparisons.clear()
    response = await pipeline.client.get("/api/v1/stats", headers={"authorization": "Bearer guess"})
    assert response.status_code == 401
    assert compared(comparisons, token)


async def test_admin_passwords_are_verified_the_same_way_for_unknown_users(
    app_with_lifespan: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passwords are checked by argon2 (constant-time inside libargon2); an unknown username still costs one
    verification, so the time taken does not tell which usernames exist."""
    from argon2 import PasswordHasher

    verified: list[str] = []
    real = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(password))
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    auth = app_with_lifespan.state.resources.settings.auth
    transport = httpx.ASGITransport(app=app_with_lifespan)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for username in (auth.admin_username, "no-such-user"):
            response = await client.post(
                "/admin/login",
                data={"username": username, "password": f"wrong-password-for-{username}"},
                headers={"origin": "http://testserver"},
            )
            assert response.status_code == 400
            assert "/admin/login" in str(response.url)
    assert verified == [f"wrong-password-for-{auth.admin_username}", "wrong-password-for-no-such-user"]
