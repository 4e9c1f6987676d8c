"""SQL for the audit log (append-only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.audit.actor import Actor
from salesbot.kit.logging import get_logger
from salesbot.models import AuditEvent

log = get_logger(__name__)


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    conversation_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's unit of work (it commits or rolls back with the action itself)."""
    event = AuditEvent(
        actor=actor.name,
        actor_user_id=actor.user_id,
        action=action,
        conversation_id=conversation_id,
        details=details or {},
    )
    session.add(event)
    await session.flush()
    log.info("audit.recorded", action=action, actor=actor.name, conversation=conversation_id)
    return event


async def conversation_events(session: AsyncSession, conversation_id: int) -> Sequence[AuditEvent]:
    """Oldest first, like the transcript."""
    rows = await session.scalars(
        select(AuditEvent).where(AuditEvent.conversation_id == conversation_id).order_by(AuditEvent.at, AuditEvent.id)
    )
    return rows.all()
