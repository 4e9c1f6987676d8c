"""Manager accounts: create, disable, change passwords, log in, issue and revoke API tokens (flush only).

The first admin comes from ADMIN_USERNAME / ADMIN_PASSWORD, only while the users table is empty; every other
account is created with `salesbot users add` (or by an admin), so the settings' password stops mattering once
real accounts exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.accounts import repository
from salesbot.accounts.passwords import check_new_password, hash_password, needs_rehash, verify_password
from salesbot.audit import repository as audit
from salesbot.audit.actor import Actor
from salesbot.kit.errors import AppError, ConflictError, NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.models import ApiToken, User, UserRole
from salesbot.models._columns import utcnow
from salesbot.settings import Settings

log = get_logger(__name__)

USERNAME_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
USERNAME_PATTERN = re.compile(USERNAME_REGEX)
TOKEN_PREFIX = "sbu_"  # noqa: S105  (marks salesbot user tokens, not a secret)
EMAIL_REGEX = r"^[^@\s]{1,64}@[^@\s]{1,255}$"
_EMAIL = re.compile(EMAIL_REGEX)


def token_hash(token: str) -> str:
    """SHA-256 of a token: tokens are 256 random bits, so a fast hash is enough (no guessing to slow down)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _checked_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise AppError("a username has 1 to 64 letters, digits, '.', '_', '-' or '@' (starting with a letter or digit)")
    return username


def _checked_password(password: str) -> str:
    try:
        return check_new_password(password)
    except ValueError as exc:
        raise AppError(str(exc)) from None


def _checked_email(email: str | None) -> str | None:
    if email is not None and not _EMAIL.fullmatch(email):
        raise AppError("the e-mail address is not valid")
    return email


async def add_user(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    name: str | None = None,
    email: str | None = None,
    role: UserRole = UserRole.MANAGER,
) -> User:
    _checked_username(username)
    _checked_password(password)
    if name is not None and (len(name) > 200 or not name.isprintable()):
        raise AppError("a name has at most 200 printable characters")
    if await repository.by_username(session, username) is not None:
        raise ConflictError(f"a user named {username!r} already exists")
    user = User(
        username=username,
        name=name,
        email=_checked_email(email),
        role=role,
        password_hash=hash_password(password),
        active=True,
    )
    session.add(user)
    await session.flush()
    log.info("accounts.user_added", user=user.id, role=role.value)
    return user


async def _user(session: AsyncSession, username: str) -> User:
    user = await repository.by_username(session, username, for_update=True)
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


async def set_active(session: AsyncSession, username: str, active: bool) -> User:
    """A disabled user can neither log in nor use their API tokens; their sessions end at the next request."""
    user = await _user(session, username)
    user.active = active
    await session.flush()
    log.info("accounts.user_active_changed", user=user.id, active=active)
    return user


async def set_password(session: AsyncSession, username: str, password: str) -> User:
    """Changing the password ends the user's admin sessions (they carry a fingerprint of the hash)."""
    _checked_password(password)
    user = await _user(session, username)
    user.password_hash = hash_password(password)
    await session.flush()
    log.info("accounts.password_changed", user=user.id)
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    return await repository.all_users(session)


async def ensure_first_admin(session: AsyncSession, settings: Settings) -> User | None:
    """While no account exists, create the admin of ADMIN_USERNAME / ADMIN_PASSWORD; returns it if created."""
    if await repository.any_user(session):
        return None
    user = await repository.insert_first(
        session,
        username=settings.auth.admin_username,
        password_hash=hash_password(settings.auth.admin_password.get_secret_value()),
        role=UserRole.ADMIN,
    )
    if user is not None:
        log.info("accounts.first_admin_created", user=user.id)
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (an unknown name costs as much time as a wrong password)."""
    user = await repository.by_username(session, username) if USERNAME_PATTERN.fullmatch(username) else None
    if not verify_password(user.password_hash if user is not None else None, password):
        return None
    assert user is not None
    if not user.active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        await session.flush()
    return user


async def issue_token(session: AsyncSession, username: str) -> tuple[ApiToken, str]:
    """A new API token for an active user: (its row, the token itself, which is never stored)."""
    user = await _user(session, username)
    if not user.active:
        raise AppError(f"user {username!r} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=token_hash(token), prefix=token[: len(TOKEN_PREFIX) + 6])
    session.add(row)
    await session.flush()
    log.info("accounts.token_issued", user=user.id, token=row.id)
    return row, token


async def revoke_token(session: AsyncSession, token_id: int, *, actor: Actor) -> ApiToken:
    row = await repository.token_by_id(session, token_id)
    if row is None:
        raise NotFoundError(f"API token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await audit.record(session, actor, "token_revoked", details={"token": row.id, "user_id": row.user_id})
    await session.flush()
    return row


async def user_of_token(session: AsyncSession, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    return await repository.user_of_token(session, token_hash(token))
