"""Malformed ids, search terms, filters and form data in the admin are a 4xx page, never a server error."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.models import Product
from tests.admin.conftest import csrf_from
from tests.reporting.factories import make_chat

GET_PATHS = [
    ("/admin/product/details/abc", 404),
    ("/admin/product/edit/abc", 404),
    ("/admin/quote/details/abc", 404),
    ("/admin/message/details/-1", 404),
    ("/admin/knowledge-chunk/details/1e3", 404),
    ("/admin/message/details/99999999999999999999999", 404),
    ("/admin/product/details/99999999999999999999999", 404),
    ("/admin/conversation/details/99999999999999999999999", 404),
    ("/admin/product/list?search=%00", 200),
    ("/admin/message/list?search=%00%01", 200),
    ("/admin/knowledge-chunk/list?search=%00", 200),
    ("/admin/conversation/list?search=%00", 200),
    ("/admin/product/list?search=" + "x" * 5000, 200),
    ("/admin/product/list?page=-5", 302),  # to the nearest real page
    ("/admin/quote/list?page=abc", 400),
    ("/admin/product/list?sortBy=embedding", 400),
    ("/admin/product/list?category=%00", 400),
    ("/admin/conversation/list?page=999999999999999999999", 302),
    ("/admin/product/export/xml", 404),
    ("/admin/dashboard?days=-1", 200),
]


@pytest.mark.parametrize(("path", "status"), GET_PATHS)
async def test_bad_urls_get_a_clear_answer(manager: httpx.AsyncClient, path: str, status: int) -> None:
    response = await manager.get(path)
    assert response.status_code == status, response.text[:300]


async def test_bad_form_data_is_refused_without_a_server_error(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    form = {"sku": "NUL-1", "name": "bad\x00name", "price": "1.00", "currency": "USD", "stock": "1", "save": "Save"}
    assert (await manager.post("/admin/product/create", data=form)).status_code == 400
    async with sessionmaker() as session:
        assert (await session.scalars(select(Product))).all() == []
    assert (await manager.post("/admin/product/edit/424242", data={**form, "name": "ok"})).status_code == 404

    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    page = await manager.get(f"/admin/conversation/details/{chat.conversation.id}")
    token = csrf_from(page.text)
    for pk in ("abc", "0", "99999999999999999999999"):
        response = await manager.post(f"/admin/conversation/{pk}/take-over", data={"csrf_token": token})
        assert response.status_code == 404, pk
    response = await manager.post("/admin/product/abc/set-active", data={"csrf_token": token, "active": "false"})
    assert response.status_code == 404
