"""SQL of the payments domain: payment links, their quotes, Stripe events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import PaymentEvent, PaymentLink, PaymentStatus, Quote


async def latest_quote(session: AsyncSession, conversation_id: int) -> Quote | None:
    stmt = select(Quote).where(Quote.conversation_id == conversation_id).order_by(Quote.id.desc()).limit(1)
    return (await session.scalars(stmt)).first()


async def live_link(session: AsyncSession, quote_id: int) -> PaymentLink | None:
    """The quote's link that is being created or is still payable."""
    stmt = (
        select(PaymentLink)
        .where(PaymentLink.quote_id == quote_id, PaymentLink.status.in_((PaymentStatus.PENDING, PaymentStatus.OPEN)))
        .order_by(PaymentLink.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def count_links(session: AsyncSession, quote_id: int) -> int:
    return int(await session.scalar(select(func.count()).where(PaymentLink.quote_id == quote_id)) or 0)


async def lock_link(session: AsyncSession, link_id: int) -> PaymentLink | None:
    return (await session.scalars(select(PaymentLink).where(PaymentLink.id == link_id).with_for_update())).first()


async def lock_link_by_session(session: AsyncSession, checkout_session_id: str) -> PaymentLink | None:
    stmt = select(PaymentLink).where(PaymentLink.checkout_session_id == checkout_session_id).with_for_update()
    return (await session.scalars(stmt)).first()


async def pending_link_ids(
    session: AsyncSession, *, conversation_id: int | None = None, older_than: datetime | None = None, limit: int = 100
) -> Sequence[int]:
    stmt = select(PaymentLink.id).where(PaymentLink.status == PaymentStatus.PENDING)
    if conversation_id is not None:
        stmt = stmt.where(PaymentLink.conversation_id == conversation_id)
    if older_than is not None:
        stmt = stmt.where(PaymentLink.updated_at < older_than)
    return (await session.scalars(stmt.order_by(PaymentLink.id).limit(limit))).all()


async def claim_event(
    session: AsyncSession, event_id: str, event_type: str, checkout_session_id: str | None
) -> int | None:
    """Record a Stripe event once; None when it was recorded before (a redelivery). A concurrent delivery of the
    same event waits here for the first one's commit and then gets None."""
    stmt = (
        insert(PaymentEvent)
        .values(event_id=event_id, type=event_type, checkout_session_id=checkout_session_id, outcome="received")
        .on_conflict_do_nothing(index_elements=[PaymentEvent.event_id])
        .returning(PaymentEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def links_of_conversation(session: AsyncSession, conversation_id: int) -> Sequence[PaymentLink]:
    stmt = select(PaymentLink).where(PaymentLink.conversation_id == conversation_id).order_by(PaymentLink.id)
    return (await session.scalars(stmt)).all()
