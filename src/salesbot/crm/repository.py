"""SQL of the CRM sync: the links between our records and the CRM's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import CrmLink, CrmObject, CrmSyncState, Quote

CONTACT_SCOPE = 0  # conversation_id of a contact link: contacts belong to the customer


async def mark_pending(
    session: AsyncSession,
    *,
    provider: str,
    object_type: CrmObject,
    customer_id: int,
    conversation_id: int,
    quote_id: int | None,
    now: datetime,
) -> None:
    """Create the link or make it due again (its external id stays: the next sync updates that record)."""
    values = {
        "provider": provider,
        "object_type": object_type,
        "customer_id": customer_id,
        "conversation_id": conversation_id,
        "quote_id": quote_id,
        "state": CrmSyncState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
    }
    stmt = insert(CrmLink).values(**values)
    changes = {"state": stmt.excluded.state, "attempts": 0, "next_attempt_at": now, "updated_at": now}
    if quote_id is not None:
        changes["quote_id"] = quote_id
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CrmLink.provider, CrmLink.object_type, CrmLink.customer_id, CrmLink.conversation_id],
            set_=changes,
        )
    )


async def lock_links(
    session: AsyncSession, *, provider: str, customer_id: int, conversation_id: int
) -> tuple[CrmLink | None, CrmLink | None]:
    """The customer's contact link and the conversation's deal link, locked (contact first: a fixed order)."""
    rows = (
        await session.scalars(
            select(CrmLink)
            .where(
                CrmLink.provider == provider,
                CrmLink.customer_id == customer_id,
                CrmLink.conversation_id.in_((CONTACT_SCOPE, conversation_id)),
            )
            .order_by(CrmLink.conversation_id, CrmLink.id)
            .with_for_update()
        )
    ).all()
    contact = next((row for row in rows if row.object_type is CrmObject.CONTACT), None)
    deal = next((row for row in rows if row.object_type is CrmObject.DEAL and row.conversation_id), None)
    return contact, deal


async def due_conversations(
    session: AsyncSession, *, provider: str, now: datetime, conversation_id: int | None = None, limit: int = 100
) -> Sequence[int]:
    """Conversations whose deal is due for a sync, or whose customer's contact is."""
    due = and_(
        CrmLink.state == CrmSyncState.PENDING, or_(CrmLink.next_attempt_at.is_(None), CrmLink.next_attempt_at <= now)
    )
    contacts_due = select(CrmLink.customer_id).where(
        CrmLink.provider == provider, CrmLink.object_type == CrmObject.CONTACT, due
    )
    stmt = select(CrmLink.conversation_id).where(
        CrmLink.provider == provider,
        CrmLink.object_type == CrmObject.DEAL,
        or_(due, CrmLink.customer_id.in_(contacts_due)),
    )
    if conversation_id is not None:
        stmt = stmt.where(CrmLink.conversation_id == conversation_id)
    return (await session.scalars(stmt.order_by(CrmLink.conversation_id).limit(limit))).all()


async def deal_quote(session: AsyncSession, conversation_id: int, quote_id: int | None) -> Quote | None:
    """The quote the deal carries: the one named, else the conversation's newest."""
    if quote_id is not None:
        quote = await session.get(Quote, quote_id)
        if quote is not None:
            return quote
    stmt = select(Quote).where(Quote.conversation_id == conversation_id).order_by(Quote.id.desc()).limit(1)
    return (await session.scalars(stmt)).first()
