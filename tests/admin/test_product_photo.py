"""A product's photo URL in the admin form: http(s) or empty; anything else is an error on the form."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.models import Product
from tests.admin.test_catalog import PRODUCT_FORM

Sessionmaker = async_sessionmaker[AsyncSession]
PHOTO = "https://cdn.shop.example/img/thinkpad-t14.jpg"


async def photo(sessionmaker: Sessionmaker) -> tuple[int, str | None]:
    async with sessionmaker() as session:
        found = (await session.execute(select(Product.id, Product.image_url))).one()
        return found.id, found.image_url


async def test_the_photo_url_is_edited_in_the_product_form(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    response = await manager.post("/admin/product/create", data={**PRODUCT_FORM, "image_url": PHOTO})
    assert response.status_code == 302, response.text
    product_id, stored = await photo(sessionmaker)
    assert stored == PHOTO

    for bad in ("ftp://cdn.shop.example/t14.jpg", "javascript:alert(1)", "cdn.shop.example/t14.jpg"):
        response = await manager.post(f"/admin/product/edit/{product_id}", data={**PRODUCT_FORM, "image_url": bad})
        assert response.status_code == 400
        assert "Photo URL must be an http or https URL" in response.text
        assert await photo(sessionmaker) == (product_id, PHOTO)

    response = await manager.post(f"/admin/product/edit/{product_id}", data={**PRODUCT_FORM, "image_url": ""})
    assert response.status_code == 302
    assert await photo(sessionmaker) == (product_id, None)
