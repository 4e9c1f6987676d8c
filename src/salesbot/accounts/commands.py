"""`salesbot users ...`: manager accounts from the command line. Passwords are read from standard input only
(never an argument: arguments show up in `ps` and shell history). Each command is one transaction, audited as
the system actor "cli"."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.accounts import service
from salesbot.audit import repository as audit
from salesbot.audit.actor import Actor
from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.kit.errors import AppError
from salesbot.models import UserRole
from salesbot.settings import Settings

T = TypeVar("T")
CLI_ACTOR = Actor("cli")


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[None]]) -> int:
    try:
        asyncio.run(_in_transaction(settings, work))
    except AppError as exc:
        print(f"salesbot users: {exc.message}", file=sys.stderr)
        return 1
    return 0


def read_password(stdin: TextIO) -> str:
    """The first line of standard input (without its line break); typed without echo on a terminal."""
    if stdin.isatty():
        return getpass.getpass("Password: ")
    return stdin.readline().removesuffix("\n").removesuffix("\r")


def add(settings: Settings, username: str, *, name: str | None, email: str | None, role: str, stdin: TextIO) -> int:
    password = read_password(stdin)

    async def work(session: AsyncSession) -> None:
        user = await service.add_user(session, username, password, name=name, email=email, role=UserRole(role))
        await audit.record(session, CLI_ACTOR, "add_user", details={"user": user.username, "role": user.role})

    code = _run(settings, work)
    if code == 0:
        print(f"user {username} added ({role})")
    return code


def list_users(settings: Settings, *, out: TextIO) -> int:
    async def work(session: AsyncSession) -> None:
        users = await service.list_users(session)
        print(f"{'USERNAME':<24} {'ROLE':<8} {'ACTIVE':<6} {'NAME':<24} E-MAIL", file=out)
        for user in users:
            print(
                f"{user.username:<24} {user.role.value:<8} {'yes' if user.active else 'no':<6} "
                f"{user.name or '-':<24} {user.email or '-'}",
                file=out,
            )

    return _run(settings, work)


def disable(settings: Settings, username: str) -> int:
    async def work(session: AsyncSession) -> None:
        await service.set_active(session, username, False)
        await audit.record(session, CLI_ACTOR, "disable_user", details={"user": username})

    code = _run(settings, work)
    if code == 0:
        print(f"user {username} disabled: logins, sessions and API tokens refused")
    return code


def set_password(settings: Settings, username: str, *, stdin: TextIO) -> int:
    password = read_password(stdin)

    async def work(session: AsyncSession) -> None:
        await service.set_password(session, username, password)
        await audit.record(session, CLI_ACTOR, "set_password", details={"user": username})

    code = _run(settings, work)
    if code == 0:
        print(f"password of {username} changed; their admin sessions have ended")
    return code


def token(settings: Settings, username: str, *, out: TextIO) -> int:
    issued: list[str] = []

    async def work(session: AsyncSession) -> None:
        row, secret = await service.issue_token(session, username)
        await audit.record(session, CLI_ACTOR, "issue_token", details={"user": username, "token": row.id})
        issued.append(secret)

    code = _run(settings, work)
    if code == 0:
        # Only the token on stdout (scripts capture it); it is not stored and cannot be shown again.
        print(issued[0], file=out)
        print("Store this token now: it is not shown again. Revoke it in the admin (API tokens).", file=sys.stderr)
    return code
