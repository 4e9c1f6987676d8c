"""The quotation document of a stored quote: one service for the REST API, the admin and the outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from salesbot.agent.playbook import DEFAULT_PLAYBOOK_PATH, Playbook, load_playbook
from salesbot.documents.quote_pdf import QuoteDocument, QuoteLine, render_quote_pdf
from salesbot.kit.errors import NotFoundError
from salesbot.models import Conversation, Quote
from salesbot.settings import Settings


def quote_number(quote_id: int) -> str:
    return f"Q-{quote_id:06d}"


def _logo(settings: Settings, playbook: Playbook) -> Path | None:
    if not playbook.company.logo:
        return None
    base = (
        Path(settings.conversation.playbook_path).expanduser().parent
        if settings.conversation.playbook_path
        else (DEFAULT_PLAYBOOK_PATH.parent)
    )
    return (base / playbook.company.logo).resolve()


def _lines(quote: Quote) -> tuple[QuoteLine, ...]:
    lines = []
    for item in quote.items:
        qty = int(item["qty"])
        unit_price = Decimal(str(item["unit_price"]))
        total = item.get("line_total")
        lines.append(
            QuoteLine(
                sku=str(item["sku"]),
                name=str(item["name"]),
                qty=qty,
                unit_price=unit_price,
                line_total=Decimal(str(total)) if total is not None else unit_price * qty,
            )
        )
    return tuple(lines)


async def quote_document(session: AsyncSession, quote_id: int, settings: Settings) -> QuoteDocument:
    quote = await session.get(Quote, quote_id)
    if quote is None:
        raise NotFoundError(f"quote {quote_id} not found")
    conversation = await session.scalar(
        select(Conversation)
        .where(Conversation.id == quote.conversation_id)
        .options(selectinload(Conversation.customer))
    )
    if conversation is None:
        raise NotFoundError(f"quote {quote_id} not found")
    customer = conversation.customer
    playbook = load_playbook(settings.conversation.playbook_path or None)
    issued = quote.created_at.astimezone(playbook.zone).date()
    return QuoteDocument(
        number=quote_number(quote.id),
        issued=issued,
        valid_until=issued + timedelta(days=playbook.quote_validity_days),
        language=conversation.language or customer.language or playbook.default_language,
        seller_name=playbook.company.name,
        seller_address=playbook.company.address,
        seller_website=playbook.company.website,
        logo=_logo(settings, playbook),
        customer_name=customer.name,
        company_name=customer.company,
        lines=_lines(quote),
        subtotal=quote.subtotal,
        discount_pct=quote.discount_pct,
        discount_amount=quote.discount_amount,
        total=quote.total,
        currency=quote.currency,
        payment_terms=playbook.payment,
        delivery_terms=playbook.delivery,
    )


async def quote_pdf(session: AsyncSession, quote_id: int, settings: Settings) -> tuple[QuoteDocument, bytes]:
    """The document and its PDF bytes (rendered in a thread: it takes tens of milliseconds of CPU)."""
    document = await quote_document(session, quote_id, settings)
    return document, await asyncio.to_thread(render_quote_pdf, document)
