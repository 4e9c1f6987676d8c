"""Accounts: argon2 password hashes, logins, the first admin from settings, API tokens stored as hashes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.accounts import service
from salesbot.audit.actor import Actor
from salesbot.kit.errors import AppError, ConflictError
from salesbot.models import ApiToken, AuditEvent, User, UserRole
from salesbot.settings import Settings

PASSWORD = "a long enough password"


async def test_a_password_is_stored_only_as_an_argon2id_hash(db_session: AsyncSession) -> None:
    user = await service.add_user(db_session, "alice", PASSWORD, name="Alice", email="alice@example.com")
    assert user.role is UserRole.MANAGER
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert await service.authenticate(db_session, "alice", PASSWORD) == user
    assert await service.authenticate(db_session, "alice", PASSWORD + "x") is None
    assert await service.authenticate(db_session, "ALICE", PASSWORD) is None
    assert await service.authenticate(db_session, "nobody", PASSWORD) is None


async def test_a_disabled_account_cannot_log_in_until_enabled(db_session: AsyncSession) -> None:
    await service.add_user(db_session, "bob", PASSWORD)
    await service.set_active(db_session, "bob", False)
    assert await service.authenticate(db_session, "bob", PASSWORD) is None
    await service.set_active(db_session, "bob", True)
    assert await service.authenticate(db_session, "bob", PASSWORD) is not None


async def test_set_password_replaces_the_old_one(db_session: AsyncSession) -> None:
    await service.add_user(db_session, "carol", PASSWORD)
    await service.set_password(db_session, "carol", "another long password")
    assert await service.authenticate(db_session, "carol", PASSWORD) is None
    assert await service.authenticate(db_session, "carol", "another long password") is not None


@pytest.mark.parametrize(
    ("username", "password", "email"),
    [
        ("ok", "short", None),
        ("bad name", PASSWORD, None),
        ("", PASSWORD, None),
        ("-leading", PASSWORD, None),
        ("x" * 65, PASSWORD, None),
        ("dave", PASSWORD, "not an address"),
    ],
)
async def test_invalid_accounts_are_refused(
    db_session: AsyncSession, username: str, password: str, email: str | None
) -> None:
    with pytest.raises(AppError):
        await service.add_user(db_session, username, password, email=email)
    assert (await db_session.scalars(select(User))).all() == []


async def test_usernames_are_unique(db_session: AsyncSession) -> None:
    await service.add_user(db_session, "erin", PASSWORD)
    with pytest.raises(ConflictError):
        await service.add_user(db_session, "erin", PASSWORD, role=UserRole.ADMIN)


async def test_the_settings_create_the_first_admin_only_while_no_account_exists(
    db_session: AsyncSession, settings: Settings
) -> None:
    first = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(update={"admin_username": "root", "admin_password": SecretStr(PASSWORD)})
        }
    )
    created = await service.ensure_first_admin(db_session, first)
    assert created is not None
    assert created.role is UserRole.ADMIN
    assert await service.authenticate(db_session, "root", PASSWORD) is not None
    # Later settings (another name or password) create nothing and change nothing.
    other = first.model_copy(
        update={"auth": first.auth.model_copy(update={"admin_username": "boss", "admin_password": SecretStr("x" * 20)})}
    )
    assert await service.ensure_first_admin(db_session, other) is None
    assert [u.username for u in await service.list_users(db_session)] == ["root"]
    assert await service.authenticate(db_session, "root", PASSWORD) is not None


async def test_no_first_admin_when_accounts_were_created_another_way(
    db_session: AsyncSession, settings: Settings
) -> None:
    await service.add_user(db_session, "frank", PASSWORD)
    assert await service.ensure_first_admin(db_session, settings) is None
    assert await service.authenticate(db_session, settings.auth.admin_username, "admin") is None


async def test_api_tokens_are_stored_as_hashes_and_stop_working_when_revoked(db_session: AsyncSession) -> None:
    user = await service.add_user(db_session, "grace", PASSWORD)
    row, token = await service.issue_token(db_session, "grace")
    assert token.startswith(service.TOKEN_PREFIX)
    stored = (await db_session.scalars(select(ApiToken))).one()
    assert token not in (stored.token_hash, stored.prefix)
    assert stored.token_hash == service.token_hash(token)
    assert await service.user_of_token(db_session, token) == user
    assert await service.user_of_token(db_session, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    await service.revoke_token(db_session, row.id, actor=Actor("root", None))
    assert await service.user_of_token(db_session, token) is None
    event = (await db_session.scalars(select(AuditEvent))).one()
    assert (event.actor, event.action) == ("root", "token_revoked")


async def test_a_disabled_users_tokens_are_refused(db_session: AsyncSession) -> None:
    await service.add_user(db_session, "heidi", PASSWORD)
    _, token = await service.issue_token(db_session, "heidi")
    await service.set_active(db_session, "heidi", False)
    assert await service.user_of_token(db_session, token) is None
    with pytest.raises(AppError):
        await service.issue_token(db_session, "heidi")
