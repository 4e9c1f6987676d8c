"""Manager accounts in the admin: per-account logins and throttling, who did what (audit), roles, assignment,
API token revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.accounts import service as accounts
from salesbot.admin import throttle
from salesbot.models import AuditEvent, Conversation, Owner, SalesStage, UserRole
from tests.admin.conftest import ADMIN_PASSWORD, ADMIN_USER, client_for, csrf_from, login
from tests.reporting.factories import make_chat

Sessionmaker = async_sessionmaker[AsyncSession]
ALICE, BOB = "alice", "bob"
PASSWORD = "alice and bob's long password"


@pytest.fixture
async def team(admin_app: FastAPI, sessionmaker: Sessionmaker) -> None:
    """The first admin (from the settings, created at its first login) and two managers."""
    async with client_for(admin_app) as client:
        assert (await login(client)).status_code == 302
    async with sessionmaker() as session:
        await accounts.add_user(session, ALICE, PASSWORD, name="Alice")
        await accounts.add_user(session, BOB, PASSWORD, name="Bob")
        await session.commit()


@asynccontextmanager
async def logged_in(app: FastAPI, username: str, *, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, client=(address, 5000)) as client:
        password = ADMIN_PASSWORD if username == ADMIN_USER else PASSWORD
        response = await login(client, username=username, password=password)
        assert response.status_code == 302, response.text
        yield client


async def post_action(client: httpx.AsyncClient, conversation_id: int, name: str, **data: str) -> httpx.Response:
    page = await client.get(f"/admin/conversation/details/{conversation_id}")
    return await client.post(
        f"/admin/conversation/{conversation_id}/{name}", data={"csrf_token": csrf_from(page.text), **data}
    )


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    import time

    frozen = Clock(time.time())
    monkeypatch.setattr(throttle, "now", frozen)
    return frozen


# --- logins and throttling --------------------------------------------------------------------------------------


async def test_each_manager_logs_in_with_their_own_password(admin_app: FastAPI, team: None) -> None:
    for username in (ALICE, BOB):
        async with client_for(admin_app) as client:
            assert (await login(client, username=username, password=PASSWORD)).status_code == 302
            assert (await client.get("/admin/dashboard")).status_code == 200
    async with client_for(admin_app) as client:
        assert (await login(client, username=ALICE, password=ADMIN_PASSWORD)).status_code == 400


async def test_a_disabled_managers_session_ends_at_the_next_request(
    admin_app: FastAPI, team: None, sessionmaker: Sessionmaker
) -> None:
    async with logged_in(admin_app, ALICE) as alice:
        assert (await alice.get("/admin/dashboard")).status_code == 200
        async with sessionmaker() as session:
            await accounts.set_active(session, ALICE, False)
            await session.commit()
        assert (await alice.get("/admin/dashboard")).status_code == 302
        assert (await login(alice, username=ALICE, password=PASSWORD)).status_code == 400


async def test_a_locked_account_unlocks_within_fifteen_minutes(
    admin_app: FastAPI, team: None, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "MAX_FAILURES_PER_ACCOUNT", 3)
    for index in range(3):  # a guessing attack from several addresses
        async with client_for(admin_app, client=(f"192.0.2.{index}", 4000)) as client:
            assert (await login(client, username=ALICE, password="guess")).status_code == 400
    clock.now += 60
    async with client_for(admin_app, client=("198.51.100.1", 4000)) as client:
        locked = await login(client, username=ALICE, password=PASSWORD)
        assert locked.status_code == 429
        assert "Try again in 15 min" in locked.text
        # Other accounts are not affected.
        assert (await login(client, username=BOB, password=PASSWORD)).status_code == 302
    clock.now += throttle.WINDOW_SECONDS - 60 - 1
    async with client_for(admin_app, client=("198.51.100.1", 4000)) as client:
        assert (await login(client, username=ALICE, password=PASSWORD)).status_code == 429
    clock.now += 1
    async with client_for(admin_app, client=("198.51.100.1", 4000)) as client:
        assert (await login(client, username=ALICE, password=PASSWORD)).status_code == 302


async def test_failures_from_one_address_never_block_other_accounts_or_addresses(
    admin_app: FastAPI, team: None, clock: Clock
) -> None:
    async with client_for(admin_app, client=("203.0.113.66", 4000)) as attacker:
        for _ in range(3 * throttle.MAX_FAILURES_PER_ADDRESS):
            await login(attacker, username=ALICE, password="guess")
        assert (await login(attacker, username=BOB, password=PASSWORD)).status_code == 429
    # One address can never lock an account: Alice herself and Bob log in from their own addresses.
    async with client_for(admin_app, client=("198.51.100.7", 4000)) as alice:
        assert (await login(alice, username=ALICE, password=PASSWORD)).status_code == 302
    async with client_for(admin_app, client=("198.51.100.8", 4000)) as bob:
        assert (await login(bob, username=BOB, password=PASSWORD)).status_code == 302
    # The attacker's address is free again once its failures are older than the window.
    clock.now += throttle.WINDOW_SECONDS
    async with client_for(admin_app, client=("203.0.113.66", 4000)) as client:
        assert (await login(client, username=BOB, password=PASSWORD)).status_code == 302


# --- who did what --------------------------------------------------------------------------------------------------


async def test_manager_actions_are_recorded_with_who_did_them(
    admin_app: FastAPI, team: None, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    cid = chat.conversation.id
    async with logged_in(admin_app, ALICE) as alice, logged_in(admin_app, BOB) as bob:
        assert (await post_action(alice, cid, "take-over")).status_code == 303
        assert (await post_action(bob, cid, "stage", stage="qualifying")).status_code == 303
        assert (await post_action(bob, cid, "send", text="Bob here, hello")).status_code == 303
        assert (await post_action(alice, cid, "assign", assignee=ALICE)).status_code == 303
        assert (await post_action(alice, cid, "hand-back")).status_code == 303
        assert (await post_action(bob, cid, "close")).status_code == 303
        page = (await alice.get(f"/admin/conversation/details/{cid}")).text
    async with sessionmaker() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
        conversation = await session.get(Conversation, cid)
        assert conversation is not None
    assert [(e.actor, e.action) for e in events] == [
        (ALICE, "take_over"),
        (BOB, "change_stage"),
        (BOB, "reply"),
        (ALICE, "assign"),
        (ALICE, "hand_back"),
        (BOB, "close"),
    ]
    assert all(e.conversation_id == cid for e in events)
    assert events[1].details == {"from": "greeting", "to": "qualifying"}
    assert conversation.sales_stage is SalesStage.QUALIFYING
    assert conversation.owner is Owner.BOT
    assert 'id="sb-assignee">assignee: alice<' in page
    for event in events:
        assert f'data-action="{event.action}"' in page


async def test_an_invalid_stage_change_or_assignee_changes_nothing(
    admin_app: FastAPI, team: None, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    cid = chat.conversation.id
    async with logged_in(admin_app, ALICE) as alice:
        for name, data in (
            ("stage", {"stage": "closing"}),  # not a next stage of greeting
            ("stage", {"stage": "nonsense"}),
            ("assign", {"assignee": "nobody-here"}),
        ):
            assert (await post_action(alice, cid, name, **data)).status_code == 303
    async with sessionmaker() as session:
        assert (await session.scalars(select(AuditEvent))).all() == []
        conversation = await session.get(Conversation, cid)
        assert conversation is not None
        assert conversation.sales_stage is SalesStage.GREETING
        assert conversation.assignee_id is None


async def test_the_list_filters_by_assignee(admin_app: FastAPI, team: None, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        mine = await make_chat(session, name="Mine Customer")
        theirs = await make_chat(session, name="Theirs Customer")
        await make_chat(session, name="Nobodys Customer")
        await session.commit()
    async with logged_in(admin_app, ALICE) as alice, logged_in(admin_app, BOB) as bob:
        await post_action(alice, mine.conversation.id, "take-over")
        await post_action(bob, theirs.conversation.id, "send", text="hi")
        own = (await alice.get("/admin/conversation/list", params={"assignee": ALICE})).text
        unassigned = (await alice.get("/admin/conversation/list", params={"assignee": "none"})).text
        bad = await alice.get("/admin/conversation/list", params={"assignee": "not a name"})
    assert "Mine Customer" in own
    assert "Theirs Customer" not in own
    assert "Nobodys Customer" in unassigned
    assert "Mine Customer" not in unassigned
    assert bad.status_code == 400


async def test_product_edits_are_audited(admin_app: FastAPI, team: None, sessionmaker: Sessionmaker) -> None:
    from tests.reporting.factories import make_product

    async with sessionmaker() as session:
        product = await make_product(session, "SKU-A1")
        await session.commit()
    async with logged_in(admin_app, BOB) as bob:
        page = await bob.get(f"/admin/product/details/{product.id}")
        response = await bob.post(
            f"/admin/product/{product.id}/set-active", data={"csrf_token": csrf_from(page.text), "active": "false"}
        )
        assert response.status_code == 303
    async with sessionmaker() as session:
        event = (await session.scalars(select(AuditEvent))).one()
    assert (event.actor, event.action, event.details["label"]) == (BOB, "deactivate_product", "SKU-A1")


# --- roles and the audit log view ------------------------------------------------------------------------------------


async def test_managers_see_the_audit_log_but_not_accounts(
    admin_app: FastAPI, team: None, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        await session.commit()
    async with logged_in(admin_app, ALICE) as alice:
        await post_action(alice, chat.conversation.id, "take-over")
        audit_page = await alice.get("/admin/audit-event/list")
        assert audit_page.status_code == 200
        assert "take_over" in audit_page.text
        assert ALICE in audit_page.text
        assert (await alice.get("/admin/user/list")).status_code == 403
        assert (await alice.get("/admin/api-token/list")).status_code == 403
        assert "/admin/user/list" not in (await alice.get("/admin/dashboard")).text
    async with logged_in(admin_app, ADMIN_USER) as admin:
        users = await admin.get("/admin/user/list")
        assert users.status_code == 200
        assert ALICE in users.text
        assert "argon2" not in users.text


async def test_an_admin_revokes_an_api_token(admin_app: FastAPI, team: None, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        row, token = await accounts.issue_token(session, BOB)
        await session.commit()
    async with logged_in(admin_app, ALICE) as alice:
        # A manager cannot revoke (nor see) tokens.
        assert (await alice.post(f"/admin/api-token/{row.id}/revoke", data={"csrf_token": "x"})).status_code == 403
    async with logged_in(admin_app, ADMIN_USER) as admin:
        page = await admin.get(f"/admin/api-token/details/{row.id}")
        assert token not in page.text
        response = await admin.post(f"/admin/api-token/{row.id}/revoke", data={"csrf_token": csrf_from(page.text)})
        assert response.status_code == 303
    async with sessionmaker() as session:
        assert await accounts.user_of_token(session, token) is None
        event = (await session.scalars(select(AuditEvent))).one()
    assert (event.actor, event.action) == (ADMIN_USER, "token_revoked")


async def test_the_first_admin_is_an_admin(admin_app: FastAPI, team: None, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        users = {u.username: u.role for u in await accounts.list_users(session)}
    assert users == {ADMIN_USER: UserRole.ADMIN, ALICE: UserRole.MANAGER, BOB: UserRole.MANAGER}


async def test_an_admin_edits_a_managers_account(admin_app: FastAPI, team: None, sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session:
        bob = await accounts.repository.by_username(session, BOB)
        assert bob is not None
    async with logged_in(admin_app, ADMIN_USER) as admin:
        url = f"/admin/user/edit/{bob.id}"
        form = {"name": "Robert", "email": "bob@example.com", "role": "admin", "active": "y"}
        refused = await admin.post(url, data={**form, "email": "not an address"})
        assert refused.status_code == 400
        assert (await admin.post(url, data=form)).status_code == 302
        page = await admin.get(f"/admin/user/details/{bob.id}")
        assert "$argon2" not in page.text
    async with sessionmaker() as session:
        edited = await accounts.repository.by_username(session, BOB)
        assert edited is not None
        assert (edited.name, edited.email, edited.role) == ("Robert", "bob@example.com", UserRole.ADMIN)
        event = (await session.scalars(select(AuditEvent))).one()
    assert (event.actor, event.action, event.details["user"]) == (ADMIN_USER, "edit_user", BOB)


async def test_an_admin_cannot_demote_or_disable_themselves(
    admin_app: FastAPI, team: None, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session:
        me = await accounts.repository.by_username(session, ADMIN_USER)
        assert me is not None
    async with logged_in(admin_app, ADMIN_USER) as admin:
        url = f"/admin/user/edit/{me.id}"
        for form in ({"role": "manager", "active": "y"}, {"role": "admin"}):
            response = await admin.post(url, data={"name": "Root", "email": "", **form})
            assert response.status_code == 400
            assert "cannot demote or disable your own account" in response.text
        assert (
            await admin.post(url, data={"name": "Root", "email": "", "role": "admin", "active": "y"})
        ).status_code == 302
    async with sessionmaker() as session:
        me = await accounts.repository.by_username(session, ADMIN_USER)
        assert me is not None
        assert (me.role, me.active, me.name) == (UserRole.ADMIN, True, "Root")
