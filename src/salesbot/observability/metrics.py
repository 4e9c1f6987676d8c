"""The catalog of fleet-wide metrics that the processes record (in Redis, `salesbot.kit.metrics`).

Call sites record with one line, e.g. ``await metrics.inc(WEBHOOKS, provider="wazzup", outcome="accepted")``.
What PostgreSQL and Redis already know (queue depths, deliveries by status, LLM usage, conversations owned by a
manager) is not recorded here but read at scrape time (`salesbot.observability.collector`).
"""

from __future__ import annotations

from typing import Protocol

from salesbot.kit.errors import AppError
from salesbot.kit.metrics import Counter, Histogram, count, inc, observe, record, sample

__all__ = ["COUNTERS", "HISTOGRAMS", "Counter", "Histogram", "inc", "observe"]

WEBHOOKS = Counter(
    "salesbot_webhooks",
    "Provider webhook requests by outcome: accepted (something new persisted), duplicate (only known events), "
    "spooled (database unreachable, kept in the Redis spool), rejected (authenticity check failed), invalid "
    "(malformed), unavailable (503, nothing persisted).",
    ("provider", "outcome"),
)
MESSAGES_RECEIVED = Counter("salesbot_messages_received", "New customer messages stored by the inbox.", ("provider",))
TURNS = Counter(
    "salesbot_turns",
    "Conversation turns that took a burst, by result (replied, handoff, silent_human_owner, silent_opted_out, "
    "consent_only, empty_reply, nothing_to_do, moved).",
    ("result",),
)
HANDOFFS = Counter(
    "salesbot_handoffs",
    "Chats handed to a manager by the bot: reason=agent (the model asked for a human) or gave_up (budget, "
    "attempts or errors exhausted).",
    ("reason",),
)
DELIVERY_ATTEMPTS = Counter(
    "salesbot_delivery_attempts",
    "Outbound send attempts by outcome: sent, retry (transient failure, backing off), failed (permanent or out "
    "of attempts).",
    ("provider", "outcome"),
)
LLM_FAILURES = Counter(
    "salesbot_llm_failures",
    "LLM requests that failed (error, timeout, unusable answer); the next fallback model takes over.",
    ("model",),
)

DEBOUNCE_SECONDS = Histogram(
    "salesbot_debounce_seconds",
    "From the burst's last customer message to the turn taking it: the debounce window plus queueing.",
)
TURN_SECONDS = Histogram(
    "salesbot_turn_seconds",
    "A turn's duration, from taking the burst to the committed reply (media preparation and agent included).",
)
DELIVERY_SECONDS = Histogram(
    "salesbot_delivery_seconds",
    "From a reply part written to the outbox to the provider accepting it (pacing and retries included).",
    ("provider",),
)

COUNTERS: tuple[Counter, ...] = (WEBHOOKS, MESSAGES_RECEIVED, TURNS, HANDOFFS, DELIVERY_ATTEMPTS, LLM_FAILURES)
HISTOGRAMS: tuple[Histogram, ...] = (DEBOUNCE_SECONDS, TURN_SECONDS, DELIVERY_SECONDS)


def webhook_failure_outcome(exc: BaseException) -> str:
    """The `WEBHOOKS` outcome of a webhook request that raised `exc`."""
    status = exc.status_code if isinstance(exc, AppError) else 500
    if status in (401, 403, 404):
        return "rejected"
    if status == 503 or status >= 500:
        return "unavailable"
    return "invalid"


class WebhookResult(Protocol):
    """What `record_webhook` needs of the inbox's result (`salesbot.inbox.service.InboxResult`)."""

    stored: int
    duplicates: int
    spooled: bool


async def record_webhook(provider: str, result: WebhookResult) -> None:
    """Count an acknowledged webhook request and the customer messages it stored."""
    if result.spooled:
        outcome = "spooled"
    elif result.duplicates and not result.stored:
        outcome = "duplicate"
    else:
        outcome = "accepted"
    await record(
        count(WEBHOOKS, provider=provider, outcome=outcome),
        count(MESSAGES_RECEIVED, result.stored, provider=provider) if result.stored else [],
    )


class TurnResult(Protocol):
    """What `record_turn` needs of a turn's outcome (`salesbot.conversations.turn.TurnOutcome`)."""

    result: str
    handoff: bool
    debounce_seconds: float | None


async def record_turn(outcome: TurnResult, seconds: float) -> None:
    """Count a turn that took its burst, its duration and how long the customer's last message waited for it."""
    waited = outcome.debounce_seconds
    await record(
        count(TURNS, result=outcome.result),
        sample(TURN_SECONDS, seconds),
        sample(DEBOUNCE_SECONDS, max(waited, 0.0)) if waited is not None else [],
        count(HANDOFFS, reason="gave_up" if outcome.result == "handoff" else "agent") if outcome.handoff else [],
    )


async def record_delivery(provider: str, outcome: str, *, seconds: float | None = None) -> None:
    """Count a send attempt's outcome; `seconds`: how long the sent part waited in the outbox."""
    await record(
        count(DELIVERY_ATTEMPTS, provider=provider, outcome=outcome),
        sample(DELIVERY_SECONDS, max(seconds, 0.0), provider=provider) if seconds is not None else [],
    )
