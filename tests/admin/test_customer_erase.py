"""The admin's "Erase customer's data" action on a conversation page (the same service as the API's DELETE)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.settings import Settings
from tests.admin.conftest import csrf_from
from tests.memory.seed import EVERYTHING, NEIGHBOUR, NOTHING, left_of, seed


async def test_the_admin_erases_a_customer_with_all_their_data(
    manager: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    seeded = await seed(sessionmaker, settings)
    conversation_id = seeded.conversation_ids[1]
    page = await manager.get(f"/admin/conversation/details/{conversation_id}")
    assert 'id="sb-erase-customer"' in page.text

    forged = await manager.post(f"/admin/conversation/{conversation_id}/erase-customer", data={"csrf_token": "x"})
    assert forged.status_code == 403
    assert await left_of(sessionmaker, seeded.customer_id) == EVERYTHING

    response = await manager.post(
        f"/admin/conversation/{conversation_id}/erase-customer", data={"csrf_token": csrf_from(page.text)}
    )

    assert response.status_code == 303
    assert response.headers["location"].endswith("/admin/conversation/list")
    assert await left_of(sessionmaker, seeded.customer_id) == NOTHING
    assert await left_of(sessionmaker, seeded.neighbour_id) == NEIGHBOUR
    for gone in seeded.conversation_ids:
        assert (await manager.get(f"/admin/conversation/details/{gone}")).status_code == 404
    again = await manager.post(
        f"/admin/conversation/{conversation_id}/erase-customer", data={"csrf_token": csrf_from(page.text)}
    )
    assert again.status_code == 404
