"""`DELETE /api/v1/customers/{id}`: the customer and everything stored about them are gone; others are not."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.settings import Settings
from tests.memory.seed import EVERYTHING, NEIGHBOUR, NOTHING, left_of, seed


async def test_erase_removes_the_customer_with_conversations_messages_quotes_and_memory(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    seeded = await seed(sessionmaker, settings)
    assert await left_of(sessionmaker, seeded.customer_id) == EVERYTHING

    response = await api.delete(f"/api/v1/customers/{seeded.customer_id}")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "customer_id": seeded.customer_id,
        "conversations": 2,
        "messages": 2,
        "quotes": 1,
        "memories": 1,
    }
    assert await left_of(sessionmaker, seeded.customer_id) == NOTHING
    assert await left_of(sessionmaker, seeded.neighbour_id) == NEIGHBOUR
    for conversation_id in seeded.conversation_ids:
        assert (await api.get(f"/api/v1/conversations/{conversation_id}")).status_code == 404
    again = await api.delete(f"/api/v1/customers/{seeded.customer_id}")
    assert again.status_code == 404
    assert again.json() == {"detail": f"customer {seeded.customer_id} not found"}


async def test_erase_needs_the_token_and_a_valid_id(
    anonymous: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    seeded = await seed(sessionmaker, settings)
    assert (await anonymous.delete(f"/api/v1/customers/{seeded.customer_id}")).status_code == 401
    anonymous.headers["Authorization"] = "Bearer test-api-token-0123456789"
    for bad in ("0", "-1", "abc", "99999999999999999999999"):
        assert (await anonymous.delete(f"/api/v1/customers/{bad}")).status_code in (404, 422), bad
    assert await left_of(sessionmaker, seeded.customer_id) == EVERYTHING
