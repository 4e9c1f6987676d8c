"""Record team alerts: the API other code calls, inside the transaction of the event it reports.

    alert_id = await record_alert(session, kind=AlertKind.PAYMENT_RECEIVED, conversation_id=conversation.id,
                                  event_key=f"payment:{session_id}", excerpt="AED 12,400.00")

One event, one alert: `event_key` names the event (a handoff of a turn, a failed message, a quote, a payment) and
is unique, so recording it again (a retried job, a webhook delivered twice) changes nothing. The row is written
with the event, so it exists exactly when the event was committed; the dispatcher cron (`alerts.tasks`) enqueues
its delivery from committed rows only. Flushes only.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.alerts import repository
from salesbot.alerts.attention import note_recorded
from salesbot.kit.logging import get_logger, redact
from salesbot.models import AlertKind, Quote
from salesbot.settings import AlertSettings

__all__ = [
    "AlertKind",
    "alert_large_quote",
    "delivery_failed_event_key",
    "excerpt_of",
    "handoff_event_key",
    "record_alert",
]

log = get_logger(__name__)

MAX_EXCERPT = 160
_SPACES = re.compile(r"\s+")


def excerpt_of(text: str | None, *, limit: int = MAX_EXCERPT) -> str | None:
    """A short, single-line excerpt with phone numbers and e-mail addresses masked (None for nothing)."""
    if not text:
        return None
    # Masked before cutting: a number cut in half would no longer be recognised as one.
    flat = _SPACES.sub(" ", redact(text)).strip()
    if not flat:
        return None
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


async def record_alert(
    session: AsyncSession,
    *,
    kind: AlertKind,
    conversation_id: int,
    event_key: str,
    excerpt: str | None = None,
) -> int | None:
    """Record the alert for an event (in the caller's transaction); None when the event was recorded before."""
    statement = repository.insert_alert(
        kind=kind,
        conversation_id=conversation_id,
        event_key=event_key[: repository.MAX_EVENT_KEY],
        excerpt=excerpt_of(excerpt),
    )
    alert_id: int | None = (await session.execute(statement)).scalar_one_or_none()
    note_recorded(session.sync_session, conversation_id)
    if alert_id is not None:
        log.info("alerts.recorded", alert=alert_id, kind=kind.value, conversation=conversation_id)
    return alert_id


def delivery_failed_event_key(message_id: int) -> str:
    """A message that failed for good (the send gave up, or the provider reported it failed later)."""
    return f"delivery_failed:{message_id}"


def handoff_event_key(conversation_id: int, last_message_id: int) -> str:
    """A turn's handoff: one per burst answered (the customer's request for a person is the same event)."""
    return f"handoff:{conversation_id}:{last_message_id}"


async def alert_large_quote(session: AsyncSession, settings: AlertSettings, quote: Quote) -> int | None:
    """A quote above `ALERT_QUOTE_ABOVE` (compared in the quote's own currency) alerts the team once."""
    threshold = settings.alert_quote_above
    if threshold is None or quote.total <= threshold:
        return None
    return await record_alert(
        session,
        kind=AlertKind.QUOTE_ABOVE_THRESHOLD,
        conversation_id=quote.conversation_id,
        event_key=f"quote:{quote.id}",
        excerpt=f"Quote #{quote.id}: {quote.currency} {Decimal(quote.total):,.2f}",
    )
