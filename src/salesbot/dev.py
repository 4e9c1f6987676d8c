"""`salesbot dev`: the whole product on one machine, supervised.

Starts (or reuses) embedded PostgreSQL and Redis, migrates, then runs the API and one worker as child
processes. Ctrl-C, SIGTERM or SIGHUP stops the children and then the embedded services; if the supervisor itself
is killed, the children die with it (PR_SET_PDEATHSIG) and the next start reuses or recovers the services.

The shutdown never depends on the terminal: with `make run | tee run.log`, Ctrl-C ends `tee` too, and a status
line printed to the closed pipe used to raise in the middle of the shutdown and leave PostgreSQL and Redis running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import FrameType

from salesbot.devstack import DevStack, _pid_alive
from salesbot.kit.logging import get_logger
from salesbot.migrate import upgrade
from salesbot.settings import Settings

log = get_logger(__name__)

READY_TIMEOUT_SECONDS = 90
_PR_SET_PDEATHSIG = 1


def _say(message: str, *, error: bool = False) -> None:
    """Print a status line; a closed stdout/stderr (the reader of a pipe is gone) silences output instead."""
    try:
        print(message, file=sys.stderr if error else sys.stdout, flush=True)
    except (OSError, ValueError):
        _silence_output()


def _silence_output() -> None:
    # Point both descriptors at /dev/null so that later writes (log lines, the interpreter's flush at exit) succeed.
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to it when the supervisor dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DevRunner:
    def __init__(self, settings: Settings, *, host: str, port: int, demo_data: bool = True) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.demo_data = demo_data
        self.data_dir = settings.data_dir.resolve()
        self.lock_file = self.data_dir / "dev.pid"
        self.stack = DevStack(self.data_dir, database_url=settings.database_url, redis_url=settings.redis_url)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    @property
    def base_url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104  (display only)
        return f"http://{shown}:{self.port}"

    def _claim_lock(self) -> bool:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            owner = int(self.lock_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            owner = None
        if owner is not None and owner != os.getpid() and _pid_alive(owner):
            url = self.lock_file.read_text().split()[1] if len(self.lock_file.read_text().split()) > 1 else ""
            _say(f"salesbot dev is already running (pid {owner}) {url}".rstrip(), error=True)
            return False
        if owner is not None:
            log.info("dev.stale_lock_recovered", pid=owner)
        self.lock_file.write_text(f"{os.getpid()} {self.base_url}\n")
        return True

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "salesbot.cli", *args],
            env=env,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # Ctrl-C reaches only the supervisor, which stops children in order
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.stopping:
            if any(child.poll() is not None for child in self.children.values()):
                return False
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:  # noqa: S310  (our own http URL)
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        return False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def stop_children(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        # The worker lets running turns finish first (WORKER_SHUTDOWN_GRACE_SECONDS); a kill would cancel them.
        deadline = time.monotonic() + max(15.0, self.settings.worker_shutdown_grace_seconds + 5)
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def run(self) -> int:
        if not self._claim_lock():
            return 1
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            _say("salesbot dev: starting embedded services ...")
            urls = self.stack.start()
            upgrade(urls.database_url)
            if self.demo_data:
                from salesbot.knowledge.seed import seed_demo_if_empty

                # First start (empty catalog): the demo business's products and knowledge base.
                seed_demo_if_empty(
                    self.settings.model_copy(update={"database_url": urls.database_url, "redis_url": urls.redis_url})
                )
            env = {
                **os.environ,
                "DATABASE_URL": urls.database_url,
                "REDIS_URL": urls.redis_url,
                "SALESBOT_DATA_DIR": str(self.data_dir),
                "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", self.base_url),
            }
            self._spawn("api", ["serve", "--host", self.host, "--port", str(self.port)], env)
            self._spawn("worker", ["worker"], env)
            if not self._wait_ready():
                if not self.stopping:
                    _say("salesbot dev: the API or the worker did not become ready; stopping", error=True)
                    return 1
                return 0
            _say(
                f"\nsalesbot is ready: {self.base_url}\n"
                f"  readiness  {self.base_url}/readyz\n"
                f"  API docs   {self.base_url}/docs\n"
                f"  admin      {self.base_url}/admin (ADMIN_USERNAME / ADMIN_PASSWORD)\n"
                + (
                    f"  simulator  {self.base_url}/simulator (or `salesbot chat`)\n"
                    if self.settings.console_provider_enabled
                    else ""
                )
                + f"  data       {self.data_dir}\n"
                "Press Ctrl-C to stop.\n"
            )
            while not self.stopping:
                for name, child in self.children.items():
                    if child.poll() is not None:
                        _say(f"salesbot dev: {name} exited with code {child.returncode}; stopping", error=True)
                        return 1
                time.sleep(0.3)
            return 0
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Children first, then the embedded services; each step runs even if an earlier one failed."""
        _say("salesbot dev: stopping ...")
        try:
            self.stop_children()
        finally:
            try:
                self.stack.stop()
            finally:
                self.lock_file.unlink(missing_ok=True)
                _say("salesbot dev: stopped")


def run_dev(settings: Settings, *, host: str, port: int, demo_data: bool = True) -> int:
    return DevRunner(settings, host=host, port=port, demo_data=demo_data).run()
