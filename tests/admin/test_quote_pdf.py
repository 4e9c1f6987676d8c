"""Managers download a quote's PDF from its admin page; nobody else does."""

from __future__ import annotations

import io

import httpx
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.admin.conftest import login
from tests.reporting.factories import make_chat, make_quote


async def test_a_logged_in_manager_downloads_the_quote_pdf(
    anonymous: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        quote = await make_quote(session, await make_chat(session, name="Omar"), sku="PR-3001", qty=2)
        await session.commit()

    refused = await anonymous.get(f"/admin/quote/{quote.id}/pdf")
    assert refused.status_code in (302, 303)
    assert "/admin/login" in refused.headers["location"]

    await login(anonymous)
    page = await anonymous.get(f"/admin/quote/details/{quote.id}")
    assert f"/admin/quote/{quote.id}/pdf" in page.text
    response = await anonymous.get(f"/admin/quote/{quote.id}/pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "PR-3001" in text
    assert "Omar" in text
    assert (await anonymous.get(f"/admin/quote/{quote.id + 999}/pdf")).status_code == 404
