from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from salesbot.devstack import DevStack, EmbeddedPostgres, EmbeddedRedis, _pid_alive


@pytest.fixture(autouse=True)
def _stop_leftovers(tmp_path: Path) -> Iterator[None]:
    """Servers are daemons: stop whatever a test started in its folder, even when the test failed."""
    yield
    EmbeddedRedis(tmp_path).stop()
    EmbeddedPostgres(tmp_path).stop()


def test_redis_start_is_idempotent_and_stop_is_clean(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persistent=False)
    pid = server.start()
    assert server.start() == pid
    server.stop()
    assert not _pid_alive(pid)
    assert server.running() is None


def test_redis_recovers_from_a_stale_pid_file(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persistent=False)
    pid = server.start()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.pid_file.exists()  # left behind by the crash
    new_pid = server.start()
    assert new_pid != pid
    server.stop()


def test_postgres_start_stop_restart_keeps_data(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path, tuned_for_tests=True)
    first = server.start()
    assert server.start().pid == first.pid  # reused
    server._psql(first, "CREATE TABLE kept (id int)", database="salesbot")
    server.stop()
    assert server.running() is None
    assert not _pid_alive(first.pid)
    second = server.start()
    assert second.pid != first.pid
    assert server._psql(second, "SELECT count(*) FROM kept", database="salesbot") == "0"
    server.stop()


def test_postgres_recovers_after_kill_9(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path, tuned_for_tests=True)
    first = server.start()
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.running() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = server.start()
    assert second.pid != first.pid
    assert server._psql(second, "SELECT 1") == "1"
    server.stop()


def test_devstack_only_starts_what_is_not_configured(tmp_path: Path) -> None:
    stack = DevStack(tmp_path, database_url="postgresql+asyncpg://external/db")
    urls = stack.start()
    try:
        assert urls.database_url == "postgresql+asyncpg://external/db"
        assert not urls.embedded_postgres
        assert urls.embedded_redis
        assert urls.redis_url.startswith("unix://")
        assert not (tmp_path / "postgres").exists()
        assert stack.discover() == urls
    finally:
        stack.stop()
    assert stack.discover() is None
