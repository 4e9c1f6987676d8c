"""A recording fake of Stripe's API (`POST /v1/coupons`, `POST /v1/checkout/sessions`) as a local HTTP server, and
the signed webhook events Stripe sends about Checkout Sessions.

It behaves like Stripe where salesbot depends on it:
- form-encoded parameters with bracketed keys; unknown parameters, a missing `mode`/URL, a bad currency or amount,
  a three-decimal currency amount not ending in 0, a coupon in another currency are `invalid_request_error` 400s;
- `Idempotency-Key`: the same key with the same parameters (and endpoint) answers the first response again (with
  `Idempotent-Replayed: true`); the same key with different parameters is a 400 `idempotency_error`;
- `amount_total` = sum of `unit_amount x quantity` minus the coupon's `amount_off`;
- answers are Stripe's Checkout Session object (tests/fixtures/stripe/checkout_session.json) with the request's
  values filled in; a wrong API key is a 401.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from salesbot.kit.currency import THREE_DECIMAL
from salesbot.payments.stripe import compute_signature
from tests.fakes.server import local_server

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe"
SESSION_TEMPLATE: dict[str, Any] = json.loads((FIXTURES / "checkout_session.json").read_text())
EVENT_TEMPLATE: dict[str, Any] = json.loads((FIXTURES / "checkout.session.completed.json").read_text())

_LINE_KEY = re.compile(r"line_items\[(\d+)\]\[(quantity|price_data\]\[(?:currency|unit_amount|product_data\]\[name))\]")
_METADATA_KEY = re.compile(r"(?:payment_intent_data\[)?metadata\]?\[([^\[\]]+)\]")
_TOP_LEVEL = frozenset({"mode", "success_url", "cancel_url", "client_reference_id", "discounts[0][coupon]"})


@dataclass(frozen=True)
class StripeRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class _StripeError(Exception):
    def __init__(self, status: int, error_type: str, message: str, param: str | None = None) -> None:
        self.status, self.body = status, {"error": {"type": error_type, "message": message}}
        if param:
            self.body["error"]["param"] = param


def _invalid(message: str, param: str | None = None) -> _StripeError:
    return _StripeError(400, "invalid_request_error", message, param)


@dataclass
class FakeStripe:
    api_key: str = "sk_test_fake_4eC39HqLyjWDarjtT1zdp7dc"
    requests: list[StripeRequest] = field(default_factory=list)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Answers (status, body) forced on the next requests, before anything is created: 500s, 429s.
    fail_next: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    _idempotency: dict[str, tuple[str, tuple[tuple[str, str], ...], int, dict[str, Any]]] = field(default_factory=dict)
    url: str = ""

    # --- HTTP ---------------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        request = StripeRequest(scope["method"], scope["path"], headers, form)
        self.requests.append(request)
        status, answer, extra = self.handle(request)
        payload = json.dumps(answer).encode()
        response_headers = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    def handle(self, request: StripeRequest) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, []
        if self.fail_next:
            status, body = self.fail_next.popleft()
            return status, body, []
        key = request.headers.get("idempotency-key")
        fingerprint = tuple(sorted(request.form.items()))
        if key is not None and key in self._idempotency:
            path, first, status, body = self._idempotency[key]
            if path != request.path or first != fingerprint:
                return (
                    400,
                    {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same parameters they "
                            f"were first used with. Try using a key other than '{key}' if you meant to execute a "
                            "different request.",
                        }
                    },
                    [],
                )
            return status, copy.deepcopy(body), [(b"idempotent-replayed", b"true")]
        try:
            if request.method == "POST" and request.path == "/v1/coupons":
                status, body = 200, self._create_coupon(request.form)
            elif request.method == "POST" and request.path == "/v1/checkout/sessions":
                status, body = 200, self._create_session(request.form)
            else:
                raise _StripeError(404, "invalid_request_error", f"Unrecognized request URL ({request.path}).")
        except _StripeError as error:
            status, body = error.status, error.body
        if key is not None:
            self._idempotency[key] = (request.path, fingerprint, status, copy.deepcopy(body))
        return status, body, []

    # --- objects ------------------------------------------------------------------------------------------------

    def _create_coupon(self, form: dict[str, str]) -> dict[str, Any]:
        unknown = set(form) - {"amount_off", "currency", "duration", "max_redemptions", "name", "percent_off"}
        if unknown:
            raise _invalid(f"Received unknown parameter: {sorted(unknown)[0]}", sorted(unknown)[0])
        if form.get("duration") not in ("once", "forever", "repeating"):
            raise _invalid("Invalid duration", "duration")
        amount = _integer(form, "amount_off")
        currency = _currency(form, "currency")
        if amount <= 0:
            raise _invalid("amount_off must be positive", "amount_off")
        coupon: dict[str, Any] = {
            "id": secrets.token_urlsafe(6),
            "object": "coupon",
            "amount_off": amount,
            "currency": currency,
            "duration": form["duration"],
            "max_redemptions": int(form["max_redemptions"]) if "max_redemptions" in form else None,
            "name": form.get("name"),
            "valid": True,
        }
        self.coupons[coupon["id"]] = coupon
        return coupon

    def _create_session(self, form: dict[str, str]) -> dict[str, Any]:
        lines: dict[int, dict[str, str]] = {}
        metadata: dict[str, str] = {}
        for key, value in form.items():
            if key in _TOP_LEVEL:
                continue
            if match := _LINE_KEY.fullmatch(key):
                lines.setdefault(int(match.group(1)), {})[match.group(2).rsplit("[", 1)[-1]] = value
            elif (match := _METADATA_KEY.fullmatch(key)) and key.startswith(("metadata[", "payment_intent_data[")):
                if key.startswith("metadata["):
                    metadata[match.group(1)] = value
            else:
                raise _invalid(f"Received unknown parameter: {key}", key)
        if form.get("mode") != "payment":
            raise _invalid("Missing required param: mode.", "mode")
        for url_field in ("success_url", "cancel_url"):
            if not form.get(url_field, "").startswith(("https://", "http://")):
                raise _invalid(f"Not a valid URL: {url_field}", url_field)
        if not lines or sorted(lines) != list(range(len(lines))):
            raise _invalid("line_items must be a list starting at index 0", "line_items")
        currencies: set[str] = set()
        subtotal = 0
        for index, line in sorted(lines.items()):
            param = f"line_items[{index}]"
            currency = _currency(line, "currency", param=f"{param}[price_data][currency]")
            amount = _integer(line, "unit_amount", param=f"{param}[price_data][unit_amount]")
            quantity = _integer(line, "quantity", param=f"{param}[quantity]")
            if not line.get("name"):
                raise _invalid("Missing required param: name.", f"{param}[price_data][product_data][name]")
            if amount < 0 or quantity < 1:
                raise _invalid("Invalid integer", param)
            if currency.upper() in THREE_DECIMAL and amount % 10:
                raise _invalid(f"Amounts in {currency} must end in 0.", f"{param}[price_data][unit_amount]")
            currencies.add(currency)
            subtotal += amount * quantity
        if len(currencies) != 1:
            raise _invalid("All line items must use the same currency.", "line_items")
        currency = currencies.pop()
        discount = 0
        if "discounts[0][coupon]" in form:
            coupon = self.coupons.get(form["discounts[0][coupon]"])
            if coupon is None:
                raise _invalid(f"No such coupon: '{form['discounts[0][coupon]']}'", "discounts[0][coupon]")
            if coupon["currency"] != currency:
                raise _invalid("The coupon's currency does not match the session's.", "discounts[0][coupon]")
            discount = min(coupon["amount_off"], subtotal)
        created = int(time.time())
        session_id = "cs_test_" + secrets.token_urlsafe(40).replace("-", "a").replace("_", "b")
        session = copy.deepcopy(SESSION_TEMPLATE)
        session.update(
            id=session_id,
            amount_subtotal=subtotal,
            amount_total=subtotal - discount,
            currency=currency,
            created=created,
            expires_at=created + 24 * 3600,
            metadata=metadata,
            success_url=form["success_url"],
            cancel_url=form["cancel_url"],
            client_reference_id=form.get("client_reference_id"),
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
            total_details={"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
        )
        self.sessions[session_id] = session
        return session

    # --- what the tests look at ---------------------------------------------------------------------------------

    def created(self, path: str) -> list[StripeRequest]:
        return [request for request in self.requests if request.path == path]

    def event(
        self,
        session_id: str,
        event_type: str = "checkout.session.completed",
        *,
        event_id: str | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        """An event about one of the sessions, in the envelope of the verbatim fixture."""
        event = copy.deepcopy(EVENT_TEMPLATE)
        session = copy.deepcopy(self.sessions[session_id])
        paid = event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded")
        session.update(status="complete" if paid else "expired", payment_status="paid" if paid else "unpaid")
        if event_type == "checkout.session.async_payment_failed":
            session.update(status="complete", payment_status="unpaid")
        session.update(changes)
        event.update(id=event_id or "evt_" + secrets.token_hex(12), type=event_type, created=int(time.time()))
        event["data"]["object"] = session
        return event


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={compute_signature(secret, stamp, body)}"


def _integer(values: dict[str, str], key: str, *, param: str | None = None) -> int:
    raw = values.get(key, "")
    if not raw.isdigit():
        raise _invalid(f"Invalid integer: {raw}", param or key)
    return int(raw)


def _currency(values: dict[str, str], key: str, *, param: str | None = None) -> str:
    raw = values.get(key, "")
    if not re.fullmatch(r"[a-z]{3}", raw):
        raise _invalid(f"Invalid currency: {raw}", param or key)
    return raw


@contextlib.asynccontextmanager
async def serve_stripe(fake: FakeStripe) -> AsyncIterator[FakeStripe]:
    async with local_server(fake) as port:
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
