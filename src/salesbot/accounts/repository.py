"""SQL for users and API tokens (services call these and only flush)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.models import ApiToken, User, UserRole


async def by_username(session: AsyncSession, username: str, *, for_update: bool = False) -> User | None:
    query = select(User).where(User.username == username)
    return await session.scalar(query.with_for_update() if for_update else query)


async def by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def all_users(session: AsyncSession, *, active_only: bool = False) -> Sequence[User]:
    query = select(User).order_by(User.username)
    if active_only:
        query = query.where(User.active.is_(True))
    return (await session.scalars(query)).all()


async def any_user(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().select_from(User))))


async def insert_first(session: AsyncSession, *, username: str, password_hash: str, role: UserRole) -> User | None:
    """Insert the account unless the username is taken (two processes bootstrapping at once insert one row)."""
    user_id = await session.scalar(
        insert(User)
        .values(username=username, password_hash=password_hash, role=role, active=True)
        .on_conflict_do_nothing(index_elements=[User.username])
        .returning(User.id)
    )
    return await session.get(User, user_id) if user_id is not None else None


async def user_of_token(session: AsyncSession, token_hash: str) -> User | None:
    """The active user owning an unrevoked token with this hash."""
    return await session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None), User.active.is_(True))
    )


async def token_by_id(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.scalar(select(ApiToken).where(ApiToken.id == token_id).with_for_update())
