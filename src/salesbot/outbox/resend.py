"""When may a message that possibly went out already be sent again? One rule for every provider.

An attempt is recorded (and committed) before its HTTP call. If no answer settles it (the worker died, the call
timed out, a gateway failed), the provider may have accepted the message: the row keeps `uncertain_since`, the
start of the earliest such attempt. The next attempt then:

- looks the message up at the provider when it can (`finds_sent`, Twilio) and records it instead of resending;
- else resends with the same idempotency key only while the provider still refuses that key as a repeat
  (`duplicate_window`, Wazzup 60 s), minus `SAFETY_MARGIN` for the request's own travel time and clock skew
  between workers; the attempt start is taken before the call, so the provider's window (which starts when the
  first request arrived) ends no earlier than `uncertain_since + duplicate_window`;
- else holds the row as `unconfirmed` and flags the conversation for a manager: a resend could be a duplicate the
  customer sees. A provider without an idempotency key (window zero, Meta Cloud API) is held at once.

A held row is reconciled when the provider reports the message after all (its echo or status webhook).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

# Part of a provider's duplicate window not used for resends: request travel time and worker clock skew.
SAFETY_MARGIN = timedelta(seconds=15)


class Resend(enum.Enum):
    # No earlier attempt may have been accepted: send.
    SEND = "send"
    # Inside the provider's duplicate window: resend with the same key (a repeat is refused, not delivered).
    RESEND_IN_WINDOW = "resend_in_window"
    # Look the message up at the provider first.
    LOOK_UP = "look_up"
    # Past the window with no way to look it up: hold for a manager.
    HOLD = "hold"


def decide(uncertain_since: datetime | None, now: datetime, *, duplicate_window: timedelta, finds_sent: bool) -> Resend:
    """What the next attempt of a row may do, given the start of its earliest unsettled attempt."""
    if uncertain_since is None:
        return Resend.SEND
    if finds_sent:
        return Resend.LOOK_UP
    if now - uncertain_since < duplicate_window - SAFETY_MARGIN:
        return Resend.RESEND_IN_WINDOW
    return Resend.HOLD
