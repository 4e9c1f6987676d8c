"""A conversation's `needs_attention` flag going up is an alert of its own, unless the same commit recorded
another alert for that conversation (a handoff or a failed delivery raises the flag too: one event, one alert).

Many places raise the flag (a handoff, a failed or unconfirmed delivery, a customer's file, a manager's tools);
the session hooks here see every one of them without each having to remember alerts:
- after each flush, conversations whose flag went from false to true are noted on the session;
- before the outermost commit, each noted conversation that still has the flag and got no other alert in this
  transaction gets a `needs_attention` alert, written in the same transaction (keyed by the transaction id).
Loaded while `salesbot.models` is (its package imports this module), so it uses the model modules directly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, SessionTransaction

from salesbot.alerts import repository
from salesbot.models.alert import AlertKind
from salesbot.models.conversation import Conversation

RAISED = "salesbot.alerts.attention_raised"
RECORDED = "salesbot.alerts.recorded_for"


def note_recorded(session: Session, conversation_id: int) -> None:
    """An alert for this conversation is part of the current transaction."""
    session.info.setdefault(RECORDED, set()).add(conversation_id)


@event.listens_for(Session, "after_flush")
def _note_raised(session: Session, flush_context: Any) -> None:
    for instance in (*session.new, *session.dirty):
        if not isinstance(instance, Conversation) or instance.id is None:
            continue
        history = inspect(instance).attrs.needs_attention.history
        if True in history.added and (instance in session.new or False in history.deleted):
            session.info.setdefault(RAISED, set()).add(instance.id)


@event.listens_for(Session, "before_commit")
def _alert_raised(session: Session) -> None:
    if session.in_nested_transaction():
        return
    # The commit flushes after this hook: flush first so that a flag raised just before the commit is seen.
    session.flush()
    raised = session.info.pop(RAISED, set()) - session.info.get(RECORDED, set())
    if not raised:
        return
    # A flag raised inside a savepoint that was rolled back is not up any more.
    flagged = session.scalars(
        select(Conversation.id).where(Conversation.id.in_(raised), Conversation.needs_attention.is_(True))
    )
    for conversation_id in flagged:
        session.execute(
            repository.insert_alert(
                kind=AlertKind.NEEDS_ATTENTION,
                conversation_id=conversation_id,
                event_key=repository.per_transaction_key(f"attention:{conversation_id}:"),
                excerpt=None,
            )
        )


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(RAISED, None)
        session.info.pop(RECORDED, None)
