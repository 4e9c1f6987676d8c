"""`database_unreachable` against the errors a real PostgreSQL and asyncpg raise: outages yes, everything else no."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from salesbot.db import create_engine
from salesbot.kit.db_errors import database_unreachable


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def raised(action: Callable[[], Awaitable[object]]) -> BaseException:
    try:
        await action()
    except Exception as exc:
        return exc
    raise AssertionError("no error raised")


async def select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def test_a_server_that_is_gone_is_unreachable() -> None:
    # A stopped embedded server removes its unix socket: connecting fails before any SQL.
    with tempfile.TemporaryDirectory(prefix="nopg") as folder:
        engine = create_engine(f"postgresql+asyncpg://postgres@/salesbot?host={folder}&port=5432")
        try:
            error = await raised(lambda: select_one(engine))
        finally:
            await engine.dispose()
    assert database_unreachable(error), repr(error)


async def test_a_refused_tcp_connection_is_unreachable() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/salesbot")
    try:
        error = await raised(lambda: select_one(engine))
    finally:
        await engine.dispose()
    assert isinstance(error, OSError)
    assert database_unreachable(error)


async def test_a_connection_the_server_terminated_is_unreachable(engine: AsyncEngine) -> None:
    """What an open session sees when PostgreSQL shuts down under it (`pg_ctl stop -m fast` terminates backends)."""
    async with engine.connect() as victim:
        pid = await victim.scalar(text("SELECT pg_backend_pid()"))
        async with engine.connect() as admin:
            assert await admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        error = await raised(lambda: victim.execute(text("SELECT 1")))
    assert database_unreachable(error), repr(error)


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        pytest.param("SELECT :value::text", {"value": "a\x00b"}, id="text the database refuses"),
        pytest.param("SELECT * FROM no_such_table", {}, id="a bug: unknown table"),
        pytest.param("SELECT 1/0", {}, id="a bug: division by zero"),
        pytest.param("SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)", {}, id="a statement timeout"),
    ],
)
async def test_errors_of_a_reachable_database_are_not_outages(
    engine: AsyncEngine, statement: str, params: dict[str, str]
) -> None:
    async def run() -> None:
        async with engine.begin() as connection:
            for part in statement.split("; "):
                await connection.execute(text(part), params if ":value" in part else {})

    error = await raised(run)
    assert not database_unreachable(error), repr(error)
    # And the session is usable again: nothing was mistaken for a broken connection.
    await select_one(engine)


async def test_a_unique_violation_is_not_an_outage(engine: AsyncEngine) -> None:
    async def run() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TEMP TABLE once (id int PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO once VALUES (1), (1)"))

    assert not database_unreachable(await raised(run))


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionFailureError("connection failure"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_connection_level_states_are_unreachable(error: Exception) -> None:
    assert database_unreachable(error)


def _store_after(cause: BaseException) -> None:
    raise RuntimeError("could not store") from cause


def _cleanup_bug_after(cause: BaseException) -> None:
    try:
        raise cause
    except OSError:
        empty: dict[str, int] = {}
        empty["missing"]  # a bug in the handler: KeyError, with the outage only as its __context__


def test_an_explicitly_wrapped_outage_is_unreachable() -> None:
    with pytest.raises(RuntimeError) as wrapped:
        _store_after(ConnectionRefusedError("refused"))
    assert database_unreachable(wrapped.value)


def test_a_bug_raised_while_handling_an_outage_is_not_one() -> None:
    """Only explicit causes count: a KeyError in a cleanup path must surface, not be spooled."""
    with pytest.raises(KeyError) as bug:
        _cleanup_bug_after(ConnectionRefusedError("refused"))
    assert isinstance(bug.value.__context__, OSError)
    assert not database_unreachable(bug.value)
