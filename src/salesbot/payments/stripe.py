"""Stripe: Checkout Sessions (form-encoded REST, `Idempotency-Key`) and the signed webhook events.

A quote's discount becomes a one-off coupon (`amount_off` in the quote's currency, `duration=once`) applied with
`discounts[0][coupon]`, so the session's `amount_total` is the quote's total. Both requests carry idempotency
keys derived from the acceptance: a retry after a timeout gets Stripe's first answer back instead of a second
session. Stripe keeps keys for 24 hours; the job's retries end well before that.

Webhooks: `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`, where each v1 is
HMAC-SHA256(endpoint secret, "{t}.{raw body}") (several when the secret is being rolled). Events whose `t` is
further than the tolerance from now are refused, as Stripe's own libraries do, so a captured request cannot be
replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from salesbot.kit.errors import AppError
from salesbot.kit.logging import get_logger
from salesbot.payments.base import (
    CheckoutRequest,
    CheckoutSession,
    PaymentRejectedError,
    PaymentUnavailableError,
)

log = get_logger(__name__)

COUPON_NAME = "Quote discount"


class StripeSignatureError(AppError):
    """The webhook is not provably from Stripe, or is too old to trust: refused, nothing changes."""

    status_code = 400


class StripeEventError(AppError):
    status_code = 400


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    # `data.object`: for the checkout events, the Checkout Session.
    object: dict[str, Any]


def compute_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(header: str | None, body: bytes, secret: str, *, tolerance: int, now: float) -> None:
    """Raise `StripeSignatureError` unless one v1 signature of `header` signs `body` within the tolerance."""
    if not header:
        raise StripeSignatureError("missing Stripe-Signature header")
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not timestamp.isascii():
        raise StripeSignatureError("Stripe-Signature has no valid timestamp (t=...)")
    if not signatures:
        raise StripeSignatureError("Stripe-Signature has no v1 signature")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise StripeSignatureError("Stripe-Signature does not match the body and the endpoint secret")
    if abs(now - int(timestamp)) > tolerance:
        raise StripeSignatureError(f"Stripe-Signature timestamp is outside the {tolerance} s tolerance")


def parse_event(body: bytes) -> StripeEvent:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise StripeEventError("the body is not JSON") from exc
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise StripeEventError("the body is not a Stripe event")
    event_id, event_type, data = payload.get("id"), payload.get("type"), payload.get("data")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise StripeEventError("the event has no valid id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise StripeEventError("the event has no valid type")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise StripeEventError("the event has no data.object")
    return StripeEvent(event_id, event_type, obj)


def checkout_form(request: CheckoutRequest, coupon_id: str | None) -> dict[str, str]:
    """The Checkout Session's parameters in Stripe's bracketed form encoding."""
    form: dict[str, str] = {
        "mode": "payment",
        "success_url": request.success_url,
        "cancel_url": request.cancel_url,
    }
    if request.client_reference_id:
        form["client_reference_id"] = request.client_reference_id
    for index, line in enumerate(request.lines):
        prefix = f"line_items[{index}]"
        form[f"{prefix}[price_data][currency]"] = request.currency.lower()
        form[f"{prefix}[price_data][unit_amount]"] = str(line.unit_amount)
        form[f"{prefix}[price_data][product_data][name]"] = line.name
        form[f"{prefix}[quantity]"] = str(line.quantity)
    if coupon_id:
        form["discounts[0][coupon]"] = coupon_id
    for key, value in request.metadata.items():
        form[f"metadata[{key}]"] = value
        # The PaymentIntent carries them too: a payment found in the dashboard leads back to the quote.
        form[f"payment_intent_data[metadata][{key}]"] = value
    return form


@dataclass
class StripeCheckout:
    http: httpx.AsyncClient
    api_key: str
    api_url: str = "https://api.stripe.com"
    name: str = "stripe"

    async def _post(self, path: str, form: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        try:
            response = await self.http.post(
                f"{self.api_url.rstrip('/')}{path}",
                data=form,
                headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": idempotency_key},
            )
        except httpx.HTTPError as exc:
            raise PaymentUnavailableError(f"Stripe unreachable: {type(exc).__name__}") from exc
        payload = _json(response)
        if response.status_code == 200:
            return payload
        error = payload.get("error")
        detail = error if isinstance(error, dict) else {}
        message = f"Stripe answered {response.status_code}: {detail.get('type') or 'error'}: {detail.get('message')}"
        # 409: a request with this key is still being processed (or the object conflicted): try again later.
        if response.status_code in (409, 429) or response.status_code >= 500:
            raise PaymentUnavailableError(message)
        raise PaymentRejectedError(message)

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        coupon_id = None
        if request.discount > 0:
            coupon = await self._post(
                "/v1/coupons",
                {
                    "amount_off": str(request.discount),
                    "currency": request.currency.lower(),
                    "duration": "once",
                    "max_redemptions": "1",
                    "name": COUPON_NAME,
                },
                f"{request.idempotency_key}:coupon",
            )
            coupon_id = _string(coupon, "id")
        session = await self._post("/v1/checkout/sessions", checkout_form(request, coupon_id), request.idempotency_key)
        amount_total = session.get("amount_total")
        if not isinstance(amount_total, int):
            raise PaymentRejectedError("Stripe answered a Checkout Session without amount_total")
        expires = session.get("expires_at")
        log.info("payments.checkout_created", amount_total=amount_total, currency=request.currency.lower())
        return CheckoutSession(
            id=_string(session, "id"),
            url=_string(session, "url"),
            amount_total=amount_total,
            currency=str(session.get("currency") or request.currency).upper(),
            expires_at=datetime.fromtimestamp(expires, UTC) if isinstance(expires, int) else None,
        )


def _string(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise PaymentRejectedError(f"Stripe answered without {key}")
    return value


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        if response.status_code >= 500:
            raise PaymentUnavailableError(f"Stripe answered {response.status_code}") from None
        raise PaymentRejectedError(f"Stripe answered {response.status_code} with a non-JSON body") from None
    if not isinstance(payload, dict):
        raise PaymentRejectedError("Stripe answered with an unexpected JSON document")
    return payload
