"""Per-user API tokens next to API_TOKEN: who acted is recorded (`events[]`), revoked or disabled tokens are
refused, conversations are assigned and filtered by assignee."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.accounts import service as accounts
from salesbot.audit.actor import Actor
from salesbot.models import AuditEvent, Conversation, Owner, User
from tests.api.conftest import API_TOKEN
from tests.reporting.factories import make_chat, make_product

Sessionmaker = async_sessionmaker[AsyncSession]
PASSWORD = "a long enough password"


async def token_for(sessionmaker: Sessionmaker, username: str) -> tuple[int, str]:
    async with sessionmaker() as session:
        if await session.scalar(select(User).where(User.username == username)) is None:
            await accounts.add_user(session, username, PASSWORD)
        row, token = await accounts.issue_token(session, username)
        await session.commit()
    return row.id, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_actions_through_a_users_token_are_recorded_as_that_user(
    anonymous: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    _, alice = await token_for(sessionmaker, "alice")
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    cid = chat.conversation.id
    url = f"/api/v1/conversations/{cid}"

    taken = await anonymous.patch(url, json={"owner": "human"}, headers=bearer(alice))
    assert taken.status_code == 200, taken.text
    assert taken.json()["assignee"] == "alice"
    sent = await anonymous.post(f"{url}/messages", json={"text": "Hello from Alice"}, headers=bearer(alice))
    assert sent.status_code == 201
    staged = await anonymous.patch(url, json={"stage": "qualifying"}, headers=bearer(API_TOKEN))
    assert staged.status_code == 200

    detail = (await anonymous.get(url, headers=bearer(alice))).json()
    assert [(e["actor"], e["action"]) for e in detail["events"]] == [
        ("alice", "take_over"),
        ("alice", "reply"),
        ("api", "change_stage"),
    ]
    assert all(e["at"] for e in detail["events"])
    assert detail["events"][2]["details"] == {"from": "greeting", "to": "qualifying"}


async def test_revoked_and_disabled_users_tokens_are_refused(
    anonymous: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    token_id, revoked = await token_for(sessionmaker, "bob")
    _, disabled = await token_for(sessionmaker, "carol")
    _, kept = await token_for(sessionmaker, "bob")
    for token in (revoked, disabled, kept):
        assert (await anonymous.get("/api/v1/conversations", headers=bearer(token))).status_code == 200
    async with sessionmaker() as session:
        await accounts.revoke_token(session, token_id, actor=Actor("root"))
        await accounts.set_active(session, "carol", False)
        await session.commit()
    for token in (revoked, disabled):
        response = await anonymous.get("/api/v1/conversations", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    # Bob's other token still works; so does the shared API_TOKEN.
    assert (await anonymous.get("/api/v1/conversations", headers=bearer(kept))).status_code == 200
    assert (await anonymous.get("/api/v1/conversations", headers=bearer(API_TOKEN))).status_code == 200
    # A token-shaped guess is refused like any other.
    assert (await anonymous.get("/api/v1/stats", headers=bearer(kept[:-2] + "xx"))).status_code == 401


async def test_assign_and_filter_by_assignee(anonymous: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    _, alice = await token_for(sessionmaker, "alice")
    await token_for(sessionmaker, "dave")
    async with sessionmaker() as session:
        first = await make_chat(session)
        second = await make_chat(session)
        third = await make_chat(session)
        await session.commit()
    api = bearer(alice)
    assert (
        await anonymous.patch(f"/api/v1/conversations/{first.conversation.id}", json={"assignee": "dave"}, headers=api)
    ).json()["assignee"] == "dave"
    await anonymous.patch(f"/api/v1/conversations/{second.conversation.id}", json={"owner": "human"}, headers=api)

    async def ids(**params: str) -> list[int]:
        response = await anonymous.get("/api/v1/conversations", params=params, headers=api)
        assert response.status_code == 200, response.text
        return sorted(item["id"] for item in response.json()["items"])

    assert await ids(assignee="dave") == [first.conversation.id]
    assert await ids(assignee="alice") == [second.conversation.id]
    assert await ids(assignee="none") == [third.conversation.id]
    assert await ids(assignee="nobody-at-all") == []
    assert (await anonymous.get("/api/v1/conversations", params={"assignee": "a b"}, headers=api)).status_code == 422

    # Unassigning is `null`; an unknown or disabled user is a 422 that changes nothing.
    url = f"/api/v1/conversations/{first.conversation.id}"
    unknown = await anonymous.patch(url, json={"assignee": "ghost", "owner": "human"}, headers=api)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "assignee"]
    async with sessionmaker() as session:
        conversation = await session.get(Conversation, first.conversation.id)
        assert conversation is not None
        assert conversation.owner is Owner.BOT
    assert (await anonymous.patch(url, json={"assignee": None}, headers=api)).json()["assignee"] is None
    assert await ids(assignee="none") == sorted([first.conversation.id, third.conversation.id])


@pytest.mark.parametrize("text", ["x" * 4097])
async def test_the_api_and_the_admin_share_the_text_limit(
    anonymous: httpx.AsyncClient, sessionmaker: Sessionmaker, text: str
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    url = f"/api/v1/conversations/{chat.conversation.id}/messages"
    assert (await anonymous.post(url, json={"text": text}, headers=bearer(API_TOKEN))).status_code == 422
    assert (await anonymous.post(url, json={"text": text[:-1]}, headers=bearer(API_TOKEN))).status_code == 201


async def test_product_changes_are_audited(anonymous: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    _, alice = await token_for(sessionmaker, "alice")
    async with sessionmaker() as session:
        product = await make_product(session, "SKU-9")
        await session.commit()
    response = await anonymous.patch(f"/api/v1/products/{product.id}", json={"stock": 3}, headers=bearer(alice))
    assert response.status_code == 200
    async with sessionmaker() as session:
        event = (await session.scalars(select(AuditEvent))).one()
    assert (event.actor, event.action, event.details["fields"]) == ("alice", "edit_product", ["stock"])
