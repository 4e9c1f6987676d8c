"""A product's photo URL over the REST API: http(s) only, taken as given; anything else is a 422 that changes
nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.models import Product

Sessionmaker = async_sessionmaker[AsyncSession]
PRODUCT = {"sku": "CH-7", "name": "Mesh chair", "price": "450.00", "currency": "AED"}
PHOTO = "https://cdn.shop.example/img/mesh-chair.jpg"
BAD_URLS = [
    "ftp://cdn.shop.example/chair.jpg",
    "javascript:alert(1)",
    "/img/chair.jpg",
    "https://",
    "https://cdn.shop.example/a chair.jpg",
    "https://cdn.shop.example/" + "x" * 2000,
    "",
]


async def image_url(sessionmaker: Sessionmaker, sku: str) -> str | None:
    async with sessionmaker() as session:
        return await session.scalar(select(Product.image_url).where(Product.sku == sku))


async def test_a_photo_url_is_stored_shown_changed_and_removed(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    created = await api.post("/api/v1/products", json={**PRODUCT, "image_url": PHOTO})
    assert created.status_code == 201, created.text
    assert created.json()["image_url"] == PHOTO
    assert await image_url(sessionmaker, "CH-7") == PHOTO
    product_id = created.json()["id"]

    other = "http://img.shop.example/chair-2.png?size=large"
    patched = await api.patch(f"/api/v1/products/{product_id}", json={"image_url": other})
    assert (patched.status_code, patched.json()["image_url"]) == (200, other)

    removed = await api.patch(f"/api/v1/products/{product_id}", json={"image_url": None})
    assert (removed.status_code, removed.json()["image_url"]) == (200, None)
    assert await image_url(sessionmaker, "CH-7") is None


@pytest.mark.parametrize("bad", BAD_URLS)
async def test_a_photo_url_that_is_not_http_is_refused(
    api: httpx.AsyncClient, sessionmaker: Sessionmaker, bad: str
) -> None:
    response = await api.post("/api/v1/products", json={**PRODUCT, "image_url": bad})
    assert response.status_code == 422, response.text
    assert ("body", "image_url") in {tuple(error["loc"][:2]) for error in response.json()["detail"]}
    async with sessionmaker() as session:
        assert (await session.scalars(select(Product))).all() == []

    product_id = (await api.post("/api/v1/products", json={**PRODUCT, "image_url": PHOTO})).json()["id"]
    response = await api.patch(f"/api/v1/products/{product_id}", json={"image_url": bad})
    assert response.status_code == 422, response.text
    assert await image_url(sessionmaker, "CH-7") == PHOTO
