"""SQL of the alerts domain. Imports model modules directly: `alerts.attention` loads while `salesbot.models` does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from salesbot.models.alert import Alert, AlertChannel, AlertDelivery, AlertDeliveryStatus, AlertKind

MAX_EVENT_KEY = 200


def insert_alert(
    *, kind: AlertKind, conversation_id: int, event_key: str | ColumnElement[str], excerpt: str | None
) -> ReturningInsert[int]:
    """INSERT ... ON CONFLICT (event_key) DO NOTHING RETURNING id: a second recording of an event is a no-op."""
    return (
        insert(Alert)
        .values(kind=kind, conversation_id=conversation_id, event_key=event_key, excerpt=excerpt)
        .on_conflict_do_nothing(index_elements=[Alert.event_key])
        .returning(Alert.id)
    )


def per_transaction_key(prefix: str) -> ColumnElement[str]:
    """`{prefix}{transaction id}`: unique per committing transaction, the same for every statement within it."""
    return literal(prefix) + cast(func.pg_current_xact_id(), String)


async def ensure_deliveries(session: AsyncSession, alert_id: int, channels: Sequence[AlertChannel]) -> None:
    """One delivery row per configured channel (a channel configured later joins alerts not delivered yet)."""
    if not channels:
        return
    await session.execute(
        insert(AlertDelivery)
        .values([{"alert_id": alert_id, "channel": channel} for channel in channels])
        .on_conflict_do_nothing(index_elements=[AlertDelivery.alert_id, AlertDelivery.channel])
    )


async def lock_due_deliveries(session: AsyncSession, alert_id: int, *, now: datetime) -> list[AlertDelivery]:
    """The alert's pending deliveries whose next attempt is due, locked (another job's are skipped)."""
    rows = await session.scalars(
        select(AlertDelivery)
        .where(
            AlertDelivery.alert_id == alert_id,
            AlertDelivery.status == AlertDeliveryStatus.PENDING,
            or_(AlertDelivery.next_attempt_at.is_(None), AlertDelivery.next_attempt_at <= now),
        )
        .order_by(AlertDelivery.id)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def lock_delivery(session: AsyncSession, delivery_id: int) -> AlertDelivery | None:
    return await session.scalar(select(AlertDelivery).where(AlertDelivery.id == delivery_id).with_for_update())


async def alerts_to_dispatch(
    session: AsyncSession, *, now: datetime, new_since: datetime | None, limit: int
) -> list[int]:
    """Alerts with a delivery due, and (`new_since` set: channels are configured) alerts created since then that
    have no delivery rows yet: the dispatcher enqueues a job for each.

    An attempt in progress pushes `next_attempt_at` past its lease, so a delivery whose worker died is due again.
    """
    due = select(AlertDelivery.alert_id).where(
        AlertDelivery.status == AlertDeliveryStatus.PENDING,
        or_(AlertDelivery.next_attempt_at.is_(None), AlertDelivery.next_attempt_at <= now),
    )
    condition: ColumnElement[bool] = Alert.id.in_(due)
    if new_since is not None:
        undelivered = and_(
            Alert.created_at >= new_since,
            ~select(AlertDelivery.id).where(AlertDelivery.alert_id == Alert.id).exists(),
        )
        condition = or_(condition, undelivered)
    rows = await session.scalars(select(Alert.id).where(condition).order_by(Alert.id).limit(limit))
    return list(rows)
