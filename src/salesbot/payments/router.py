"""`POST /webhooks/stripe`: verify the signature, apply the event once, acknowledge. Nothing slow happens here."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse

from salesbot.dependencies import RedisDep, SessionDep, SettingsDep
from salesbot.kit.errors import NotFoundError
from salesbot.models._columns import utcnow
from salesbot.outbox.service import schedule_delivery
from salesbot.payments import service
from salesbot.payments.stripe import parse_event, verify_signature

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/stripe",
    summary="Stripe webhook (Checkout Session completed, expired, delayed payment failed)",
    responses={400: {"description": "Missing, wrong or expired Stripe-Signature, or not a Stripe event"}},
)
async def stripe_webhook(
    request: Request, session: SessionDep, settings: SettingsDep, redis: RedisDep, background: BackgroundTasks
) -> dict[str, Any]:
    """Signed with `Stripe-Signature` (HMAC-SHA256 with `STRIPE_WEBHOOK_SECRET`, 300 s tolerance); a redelivered
    event (same Stripe event id) changes nothing and is acknowledged."""
    secret = settings.stripe.webhook_secret.get_secret_value()
    if not secret:
        raise NotFoundError("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
    body = await request.body()
    verify_signature(
        request.headers.get("stripe-signature"),
        body,
        secret,
        tolerance=settings.stripe.webhook_tolerance_seconds,
        now=time.time(),
    )
    outcome = await service.handle_event(session, settings, parse_event(body), now=utcnow())
    if outcome.deliver_to is not None:
        # Background tasks run after the session committed (SessionDep), so the delivery job sees the message.
        background.add_task(schedule_delivery, redis, outcome.deliver_to)
    return {"ok": True, "outcome": outcome.outcome, "duplicate": outcome.duplicate}


pages = APIRouter(prefix="/payments", tags=["payments"], include_in_schema=False)

_PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
    '<title>{title}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto">'
    "<h1>{title}</h1><p>{text}</p></body></html>"
)


@pages.get("/success", response_class=HTMLResponse)
async def payment_success() -> HTMLResponse:
    """Where Stripe sends the customer after paying (the webhook, not this page, marks the quote paid)."""
    return HTMLResponse(
        _PAGE.format(title="Thank you", text="Your payment is being confirmed. You can return to the chat.")
    )


@pages.get("/cancelled", response_class=HTMLResponse)
async def payment_cancelled() -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(
            title="Payment not completed",
            text="Nothing was charged. The link in the chat still works until it expires.",
        )
    )
