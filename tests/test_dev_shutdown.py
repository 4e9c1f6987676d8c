"""`salesbot dev` stops everything it started on Ctrl-C, SIGTERM and SIGHUP, even when its stdout is gone.

`make run 2>&1 | tee run.log` then Ctrl-C: the terminal's SIGINT ends `tee` as well, so the supervisor's shutdown
prints into a pipe nobody reads. That used to raise in the middle of the shutdown and leave PostgreSQL and Redis
running. Here the real `salesbot dev` runs with its output in a pipe that the test closes before the signal.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from salesbot.devstack import EmbeddedPostgres, EmbeddedRedis, _pid_alive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # One data folder for every case: the cluster's initdb is paid once.
    folder = tmp_path_factory.mktemp("dev")
    yield folder
    EmbeddedRedis(folder).stop()
    EmbeddedPostgres(folder).stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_with_a_closed_stdout_stops_every_service(data_dir: Path, signum: signal.Signals) -> None:
    env = {
        **os.environ,
        "SALESBOT_ENV_FILE": "",
        "SALESBOT_DATA_DIR": str(data_dir),
        "EMBEDDING_MODEL": "offline",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "SALESBOT_ENV"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "salesbot.cli", "dev", "--no-demo", "--port", str(_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[bytes] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith(b"salesbot is ready"):
                break
        assert seen, "salesbot dev printed nothing"
        assert seen[-1].startswith(b"salesbot is ready"), b"".join(seen).decode(errors="replace")
        postgres = EmbeddedPostgres(data_dir).running()
        redis = EmbeddedRedis(data_dir).running()
        assert postgres is not None
        assert redis is not None

        process.stdout.close()  # the reader of the pipe is gone, as `tee` is after Ctrl-C
        process.send_signal(signum)
        process.wait(timeout=60)

        assert not _pid_alive(postgres.pid)
        assert not _pid_alive(redis)
        assert EmbeddedPostgres(data_dir).running() is None
        assert EmbeddedRedis(data_dir).running() is None
        assert not (data_dir / "dev.pid").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
