"""The worker's connection pool without a pre-ping: a pooled connection the server closed is replaced on checkout
(no query fails for it). Real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from salesbot.db import create_engine
from tests.fakes.waiting import eventually


async def test_a_pooled_connection_the_server_closed_is_replaced_without_a_failed_query(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pre_ping=False)
    admin = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            first_pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        # The pool keeps the connection; the server ends it (a restart, an idle timeout, an administrator).
        async with admin.connect() as connection:
            assert await connection.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": first_pid})

        async def noticed() -> bool:
            return bool(driver.is_closed())

        await eventually(noticed, what="the driver noticing the server closed its connection")
        async with engine.connect() as connection:
            second_pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert second_pid != first_pid
    finally:
        await engine.dispose()
        await admin.dispose()
