"""Products (list, create, patch, re-embedding), quotes and stats over the REST API."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.knowledge.embeddings import get_embedder
from salesbot.models import Author, LlmUsage, Product, SalesStage
from salesbot.settings import Settings
from tests.reporting.factories import add_message, make_chat, make_product, make_quote

Sessionmaker = async_sessionmaker[AsyncSession]
NEW_PRODUCT = {
    "sku": "PRN-200",
    "name": "Laser printer M200",
    "description": "Monochrome, 30 pages per minute, duplex",
    "category": "printers",
    "price": "249.90",
    "currency": "EUR",
    "stock": 12,
    "attributes": {"brand": "HP", "ppm": 30},
}


async def stored(sessionmaker: Sessionmaker, sku: str) -> Product:
    async with sessionmaker() as session:
        product = await session.scalar(select(Product).where(Product.sku == sku))
        assert product is not None
        return product


async def test_list_products_with_filters_and_pages(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        await make_product(session, "LAP-1", name="Laptop 14", category="Laptops")
        await make_product(session, "LAP-2", name="Laptop 16", category="Laptops", active=False)
        await make_product(session, "PRN-1", name="Printer", category="printers")
        await session.commit()

    async def skus(**params: object) -> list[str]:
        response = await api.get("/api/v1/products", params=params)
        assert response.status_code == 200, response.text
        return [item["sku"] for item in response.json()["items"]]

    assert await skus() == ["LAP-1", "LAP-2", "PRN-1"]
    assert await skus(q="laptop") == ["LAP-1", "LAP-2"]
    assert await skus(q="prn") == ["PRN-1"]
    assert await skus(sku="LAP-2") == ["LAP-2"]
    assert await skus(category="laptops") == ["LAP-1", "LAP-2"]
    assert await skus(active="false") == ["LAP-2"]
    assert await skus(active="true", category="Laptops") == ["LAP-1"]
    assert await skus(q="100%_") == []
    last = (await api.get("/api/v1/products", params={"page": 2, "page_size": 2})).json()
    assert (last["total"], last["pages"], [i["sku"] for i in last["items"]]) == (3, 2, ["PRN-1"])
    item = (await api.get("/api/v1/products", params={"sku": "LAP-1"})).json()["items"][0]
    assert "embedding" not in item
    assert "search_vector" not in item
    for params in ({"active": "maybe"}, {"page_size": "0"}, {"q": "a\u0000"}):
        assert (await api.get("/api/v1/products", params=params)).status_code == 422


async def test_a_product_without_a_currency_takes_the_playbooks(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/products", json={"sku": "NC-1", "name": "Desk lamp", "price": "120.00"})
    assert response.status_code == 201, response.text
    assert response.json()["currency"] == "AED"  # the shipped playbook's, not dollars


async def test_create_product_embeds_it(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, api_settings: Settings
) -> None:
    response = await api.post("/api/v1/products", json=NEW_PRODUCT)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["sku"], Decimal(body["price"]), body["currency"], body["active"]) == (
        "PRN-200",
        Decimal("249.90"),
        "EUR",
        True,
    )
    assert body["embedding_model"] == get_embedder(api_settings).name
    product = await stored(sessionmaker, "PRN-200")
    assert product.embedding is not None
    assert product.content_hash
    fetched = await api.get(f"/api/v1/products/{body['id']}")
    assert fetched.json() == body


async def test_duplicate_sku_is_a_409(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/products", json=NEW_PRODUCT)).status_code == 201
    response = await api.post("/api/v1/products", json={**NEW_PRODUCT, "name": "Other"})
    assert response.status_code == 409
    assert "PRN-200" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "-1"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "1.999"}, "price"),
        ({"price": "1e20"}, "price"),
        ({"currency": "usd"}, "currency"),
        ({"stock": -1}, "stock"),
        ({"stock": 2**40}, "stock"),
        ({"sku": ""}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"name": "  "}, "name"),
        ({"attributes": {"a": "\u0000"}}, "attributes"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"active": "perhaps"}, "active"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_product_input_is_422_naming_the_field(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, change: dict[str, object], field: str
) -> None:
    response = await api.post("/api/v1/products", json={**NEW_PRODUCT, **change})
    assert response.status_code == 422, response.text
    assert ("body", field) in {tuple(error["loc"][:2]) for error in response.json()["detail"]}
    async with sessionmaker() as session:
        assert (await session.scalars(select(Product))).all() == []


async def test_patch_product_re_embeds_only_when_the_text_changes(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    product_id = (await api.post("/api/v1/products", json=NEW_PRODUCT)).json()["id"]
    first = await stored(sessionmaker, "PRN-200")

    response = await api.patch(f"/api/v1/products/{product_id}", json={"price": "199.00", "stock": 0})
    assert response.status_code == 200
    assert (Decimal(response.json()["price"]), response.json()["stock"]) == (Decimal("199.00"), 0)
    repriced = await stored(sessionmaker, "PRN-200")
    assert (repriced.content_hash, repriced.embedding) == (first.content_hash, first.embedding)

    response = await api.patch(f"/api/v1/products/{product_id}", json={"description": "Colour laser, 40 ppm"})
    assert response.status_code == 200
    edited = await stored(sessionmaker, "PRN-200")
    assert edited.content_hash != first.content_hash
    assert edited.embedding != first.embedding

    assert (await api.patch(f"/api/v1/products/{product_id}", json={"active": False})).json()["active"] is False


async def test_patch_product_errors(api: httpx.AsyncClient) -> None:
    first = (await api.post("/api/v1/products", json=NEW_PRODUCT)).json()["id"]
    await api.post("/api/v1/products", json={**NEW_PRODUCT, "sku": "OTHER-1"})
    assert (await api.patch(f"/api/v1/products/{first}", json={"sku": "OTHER-1"})).status_code == 409
    assert (await api.patch("/api/v1/products/99999", json={"stock": 1})).status_code == 404
    assert (await api.get("/api/v1/products/99999")).status_code == 404
    for body in ({}, {"price": None}, {"stock": "many"}):
        assert (await api.patch(f"/api/v1/products/{first}", json=body)).status_code == 422


async def test_get_quote(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        quote = await make_quote(session, chat, sku="PRN-200", qty=3)
        await session.commit()
    response = await api.get(f"/api/v1/quotes/{quote.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["conversation_id"] == chat.conversation.id
    assert body["items"][0] == {
        "sku": "PRN-200",
        "name": "Product PRN-200",
        "qty": 3,
        "unit_price": "100.00",
        "line_total": "300.00",
    }
    assert (Decimal(body["subtotal"]), Decimal(body["discount_pct"]), Decimal(body["total"])) == (
        Decimal("300.00"),
        Decimal("5.00"),
        Decimal("285.00"),
    )
    assert (await api.get("/api/v1/quotes/99999")).status_code == 404
    assert (await api.get("/api/v1/quotes/x")).status_code == 404
    assert (await api.get("/api/v1/quotes/0")).status_code == 422


async def test_stats_are_the_dashboard_numbers(api: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session, stage=SalesStage.QUOTING)
        await add_message(session, chat, "hello")
        await add_message(session, chat, "hi!", author=Author.BOT, latency_ms=700, cost=Decimal("0.004"))
        session.add(
            LlmUsage(
                conversation_id=chat.conversation.id, outcome="sent", requests=1, tokens_in=9, cost=Decimal("0.004")
            )
        )
        await session.commit()
    response = await api.get("/api/v1/stats", params={"days": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["days"] == 3
    assert len(body["per_day"]) == 3
    assert {entry["stage"]: entry["conversations"] for entry in body["funnel"]}["quoting"] == 1
    assert (body["totals"]["inbound_messages"], body["totals"]["outbound_messages"]) == (1, 1)
    assert Decimal(body["totals"]["llm_cost"]) == Decimal("0.004")
    assert (body["totals"]["llm_requests"], body["totals"]["llm_tokens_in"]) == (1, 9)
    assert body["agent_latency"] == {"p50_ms": 700, "p95_ms": 700, "samples": 1}
    assert body["current"]["active_conversations"] == 1
    for days in ("0", "367", "x"):
        assert (await api.get("/api/v1/stats", params={"days": days})).status_code == 422
