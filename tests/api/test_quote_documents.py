"""The quotation PDF over HTTP: the REST API (API token) and the signed, expiring link a provider fetches."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.documents.links import signed_quote_url
from salesbot.settings import Settings
from tests.reporting.factories import make_chat, make_quote


@pytest.fixture
async def quote_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        chat = await make_chat(session, name="Maria Ivanova", language="ru")
        quote = await make_quote(session, chat, sku="LP-1001", qty=3)
        await session.commit()
        return quote.id


def pdf_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)


async def test_the_api_serves_the_quote_pdf_to_token_holders(api: httpx.AsyncClient, quote_id: int) -> None:
    response = await api.get(f"/api/v1/quotes/{quote_id}.pdf")
    text = pdf_text(response)
    assert f"Q-{quote_id:06d}" in text
    assert "Коммерческое предложение" in text  # the conversation's language
    assert "Мария" not in text  # the customer's name as stored, not translated
    assert "Maria Ivanova" in text
    assert "LP-1001" in text
    assert response.headers["content-disposition"] == f'inline; filename="quote-Q-{quote_id:06d}.pdf"'

    assert (await api.get(f"/api/v1/quotes/{quote_id + 1000}.pdf")).status_code == 404
    assert (await api.get("/api/v1/quotes/0.pdf")).status_code == 422
    # The PDF belongs to the API: a wrong token or none, no document.
    assert (
        await api.get(f"/api/v1/quotes/{quote_id}.pdf", headers={"Authorization": "Bearer wrong"})
    ).status_code == 401
    del api.headers["Authorization"]
    assert (await api.get(f"/api/v1/quotes/{quote_id}.pdf")).status_code == 401


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_signed_link_serves_the_pdf_without_a_token(
    anonymous: httpx.AsyncClient, api_settings: Settings, quote_id: int
) -> None:
    url = signed_quote_url(api_settings, quote_id, now=datetime.now(UTC))
    assert url.startswith(f"{api_settings.public_base_url}/documents/quotes/{quote_id}.pdf?expires=")
    assert f"Q-{quote_id:06d}" in pdf_text(await anonymous.get(_relative(url)))


async def test_a_changed_or_expired_link_is_refused(
    anonymous: httpx.AsyncClient, api_settings: Settings, quote_id: int, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        other = (await make_quote(session, chat, sku="OTHER-1")).id
        await session.commit()
    now = datetime.now(UTC)
    good = urlsplit(signed_quote_url(api_settings, quote_id, now=now))
    query = {key: values[0] for key, values in parse_qs(good.query).items()}
    later = int(query["expires"]) + 86400
    flipped = ("0" if query["signature"][0] != "0" else "1") + query["signature"][1:]
    refused = [
        f"/documents/quotes/{other}.pdf?expires={query['expires']}&signature={query['signature']}",  # another quote
        f"{good.path}?expires={later}&signature={query['signature']}",  # a later expiry
        f"{good.path}?expires={query['expires']}&signature={flipped}",  # a changed signature
        _relative(signed_quote_url(api_settings, quote_id, now=now - timedelta(days=8))),  # expired (7 days)
    ]
    # A missing or mangled part is refused like a forged link.
    refused += [
        good.path,
        f"{good.path}?expires={query['expires']}",
        f"{good.path}?expires=x&signature={query['signature']}",
        f"{good.path}?expires=-1&signature={query['signature']}",
    ]
    for path in refused:
        response = await anonymous.get(path)
        assert response.status_code == 403, path
        assert response.json()["detail"] in ("invalid document link", "this document link has expired")
    # No listing of documents.
    assert (await anonymous.get("/documents/quotes/")).status_code == 404
    assert (await anonymous.get("/documents/")).status_code == 404
