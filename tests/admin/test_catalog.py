"""Products and knowledge in the admin: CRUD without vectors on screen, re-embedding on edit, deactivation;
quotes and messages read-only; the dashboard works offline."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqladmin
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.knowledge.documents import content_hash, product_document
from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.search import HybridSearch
from salesbot.models import Author, DeliveryStatus, KnowledgeChunk, LlmUsage, Product, SalesStage
from salesbot.settings import Settings
from tests.admin.conftest import csrf_from
from tests.reporting.factories import add_message, make_chat, make_product, make_quote

Sessionmaker = async_sessionmaker[AsyncSession]

PRODUCT_FORM = {
    "sku": "LAP-100",
    "name": "ThinkPad T14",
    "category": "laptops",
    "description": "14-inch business laptop",
    "price": "1299.00",
    "currency": "USD",
    "stock": "7",
    "attributes": '{"brand": "Lenovo"}',
    "active": "y",
    "save": "Save",
}


async def product(sessionmaker: Sessionmaker, sku: str) -> Product:
    async with sessionmaker() as session:
        found = await session.scalar(select(Product).where(Product.sku == sku))
        assert found is not None
        return found


async def test_creating_a_product_embeds_it(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker, admin_settings: Settings
) -> None:
    response = await manager.post("/admin/product/create", data=PRODUCT_FORM)
    assert response.status_code == 302, response.text
    created = await product(sessionmaker, "LAP-100")
    assert (created.name, created.price, created.stock, created.attributes) == (
        "ThinkPad T14",
        Decimal("1299.00"),
        7,
        {"brand": "Lenovo"},
    )
    embedder = get_embedder(admin_settings)
    document = product_document(
        sku="LAP-100",
        name="ThinkPad T14",
        category="laptops",
        description="14-inch business laptop",
        attributes={"brand": "Lenovo"},
    )
    assert created.embedding_model == embedder.name
    assert created.content_hash == content_hash(document)
    expected = (await embedder.embed_documents([document]))[0]
    assert created.embedding is not None
    assert [round(x, 5) for x in created.embedding] == [round(float(x), 5) for x in expected]


async def test_editing_the_text_re_embeds_and_a_price_change_does_not(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    assert (await manager.post("/admin/product/create", data=PRODUCT_FORM)).status_code == 302
    before = await product(sessionmaker, "LAP-100")

    response = await manager.post(f"/admin/product/edit/{before.id}", data={**PRODUCT_FORM, "price": "1199.00"})
    assert response.status_code == 302, response.text
    repriced = await product(sessionmaker, "LAP-100")
    assert repriced.price == Decimal("1199.00")
    assert repriced.content_hash == before.content_hash
    assert repriced.embedding == before.embedding

    response = await manager.post(
        f"/admin/product/edit/{before.id}", data={**PRODUCT_FORM, "description": "14-inch laptop with LTE modem"}
    )
    assert response.status_code == 302
    edited = await product(sessionmaker, "LAP-100")
    assert edited.content_hash != before.content_hash
    assert edited.embedding != before.embedding


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", "-1"), ("price", "abc"), ("currency", "usd"), ("stock", "-3"), ("sku", ""), ("attributes", "{not json")],
)
async def test_invalid_product_forms_are_refused(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker, field: str, value: str
) -> None:
    response = await manager.post("/admin/product/create", data={**PRODUCT_FORM, field: value})
    assert response.status_code == 400
    async with sessionmaker() as session:
        assert (await session.scalars(select(Product))).all() == []


async def test_a_duplicate_sku_is_an_error_on_the_form(manager: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        await make_product(session, "LAP-100")
        await session.commit()
    response = await manager.post("/admin/product/create", data=PRODUCT_FORM)
    assert response.status_code == 400
    assert "uq_products_sku" in response.text or "duplicate" in response.text.lower()


async def test_vectors_are_never_rendered(manager: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    assert (await manager.post("/admin/product/create", data=PRODUCT_FORM)).status_code == 302
    created = await product(sessionmaker, "LAP-100")
    assert created.embedding is not None
    sample = f"{created.embedding[0]:.6f}"[:7]
    for path in (
        "/admin/product/list",
        f"/admin/product/details/{created.id}",
        f"/admin/product/edit/{created.id}",
        "/admin/product/create",
        "/admin/product/export/csv",
    ):
        response = await manager.get(path)
        assert response.status_code == 200, path
        assert "embedding" not in re.sub(r"(Embedded with|embedding_model)", "", response.text).lower(), path
        assert "search_vector" not in response.text, path
        assert sample not in response.text, path


async def test_search_filter_and_deactivate_products(manager: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        laptop = await make_product(session, "LAP-1", name="Laptop Pro", category="laptops")
        await make_product(session, "PRN-1", name="Laser printer", category="printers")
        await session.commit()
    found = await manager.get("/admin/product/list", params={"search": "laser"})
    assert "PRN-1" in found.text
    assert "LAP-1" not in found.text
    by_category = await manager.get("/admin/product/list", params={"category": "laptops"})
    assert "LAP-1" in by_category.text
    assert "PRN-1" not in by_category.text

    page = await manager.get(f"/admin/product/details/{laptop.id}")
    assert "active: offered to customers" in page.text
    response = await manager.post(
        f"/admin/product/{laptop.id}/set-active", data={"csrf_token": csrf_from(page.text), "active": "false"}
    )
    assert response.status_code == 303
    assert (await product(sessionmaker, "LAP-1")).active is False
    inactive = await manager.get("/admin/product/list", params={"active": "false"})
    assert "LAP-1" in inactive.text
    assert "PRN-1" not in inactive.text
    # No delete: products are deactivated.
    assert (await manager.delete(f"/admin/product/delete?pks={laptop.id}")).status_code == 403
    assert (await manager.post(f"/admin/product/{laptop.id}/set-active", data={"active": "true"})).status_code == 403


async def test_knowledge_create_edit_and_deactivate(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker, admin_settings: Settings
) -> None:
    form = {
        "source": "faq/delivery.md",
        "chunk_index": "0",
        "title": "Delivery",
        "content": "We deliver office furniture within two days anywhere in Dubai.",
        "language": "en",
        "active": "y",
        "save": "Save",
    }
    assert (await manager.post("/admin/knowledge-chunk/create", data=form)).status_code == 302
    async with sessionmaker() as session:
        chunk = await session.scalar(select(KnowledgeChunk))
    assert chunk is not None
    assert chunk.embedding is not None
    assert chunk.embedding_model == get_embedder(admin_settings).name
    first_hash = chunk.content_hash
    edited_form = {**form, "content": "We deliver office furniture within one day anywhere in Dubai."}
    assert (await manager.post(f"/admin/knowledge-chunk/edit/{chunk.id}", data=edited_form)).status_code == 302
    async with sessionmaker() as session:
        edited = await session.get(KnowledgeChunk, chunk.id)
    assert edited is not None
    assert edited.content_hash != first_hash
    listing = await manager.get("/admin/knowledge-chunk/list", params={"search": "deliver"})
    assert "faq/delivery.md" in listing.text

    async def found() -> list[str]:
        async with sessionmaker() as session:
            search = HybridSearch(session, get_embedder(admin_settings))
            return [hit.source for hit in await search.search_knowledge("office furniture delivery Dubai")]

    assert await found() == ["faq/delivery.md"]
    page = await manager.get(f"/admin/knowledge-chunk/details/{chunk.id}")
    assert "active: used in the bot&#39;s answers" in page.text
    response = await manager.post(
        f"/admin/knowledge-chunk/{chunk.id}/set-active", data={"csrf_token": csrf_from(page.text), "active": "false"}
    )
    assert response.status_code == 303
    assert await found() == []  # the bot no longer sees it
    inactive = await manager.get("/admin/knowledge-chunk/list", params={"active": "false"})
    assert "faq/delivery.md" in inactive.text
    assert (await manager.delete(f"/admin/knowledge-chunk/delete?pks={chunk.id}")).status_code == 403


async def test_quotes_and_messages_are_read_only(manager: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        message = await add_message(session, chat, "hello")
        quote = await make_quote(session, chat)
        await session.commit()
    for identity, pk in (("quote", quote.id), ("message", message.id)):
        assert (await manager.get(f"/admin/{identity}/list")).status_code == 200
        assert (await manager.get(f"/admin/{identity}/details/{pk}")).status_code == 200
        assert (await manager.get(f"/admin/{identity}/create")).status_code == 403
        assert (await manager.get(f"/admin/{identity}/edit/{pk}")).status_code == 403
        assert (await manager.post(f"/admin/{identity}/edit/{pk}", data={"text": "x"})).status_code == 403
        assert (await manager.delete(f"/admin/{identity}/delete?pks={pk}")).status_code == 403
    quote_page = await manager.get(f"/admin/quote/details/{quote.id}")
    assert "Total 190.00 USD" in quote_page.text
    filtered = await manager.get("/admin/message/list", params={"direction": "outbound"})
    assert "hello" not in filtered.text
    assert (await manager.get("/admin/message/list", params={"delivery": "nope"})).status_code == 400


async def test_dashboard_shows_numbers_and_charts_without_any_external_resource(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session, stage=SalesStage.SOLUTION)
        await add_message(session, chat, "hi")
        await add_message(session, chat, "hello", author=Author.BOT, latency_ms=900, cost=Decimal("0.002"))
        await add_message(session, chat, "lost", author=Author.BOT, status=DeliveryStatus.FAILED)
        session.add(LlmUsage(conversation_id=chat.conversation.id, outcome="sent", requests=1, cost=Decimal("0.002")))
        await session.commit()
    response = await manager.get("/admin/dashboard", params={"days": "7"})
    assert response.status_code == 200
    html = response.text
    assert html.count('<svg class="sb-chart"') == 6
    assert "<title>solution: 1</title>" in html
    assert re.search(r'data-metric="Messages in / out">1 / 2<', html)
    assert re.search(r'data-metric="Failed deliveries">1<', html)
    assert re.search(r'data-metric="LLM cost">\$0.0020<', html)
    assert html.count("<tr><td>20") == 7  # one table row per day
    # Offline: no script, stylesheet or image from another host, in the page or in the bundled assets it uses.
    external = re.findall(r'(?:src|href)="(https?://(?!testserver)[^"]+)"', html)
    assert external == []
    assets = re.findall(r'(?:src|href)="http://testserver(/admin/statics/[^"]+)"', html)
    assert assets
    statics = Path(sqladmin.__file__).parent / "statics"
    for asset in assets:
        text = (statics / asset.removeprefix("/admin/statics/")).read_text(errors="ignore")
        assert not re.search(r"url\(\s*['\"]?https?://", text), asset
        assert "@import" not in text or "http" not in text.split("@import", 1)[1][:200], asset
    # A period outside the offered ones falls back to 14 days instead of failing.
    assert (await manager.get("/admin/dashboard", params={"days": "100000"})).text.count("<tr><td>20") == 14
