"""The real product on a real port, for clients that are not in-process (Chromium, schemathesis over HTTP).

`LiveStack` runs uvicorn with `create_app(settings)` and, optionally, an arq worker with the production
`salesbot.worker.serve`, both on one event loop in a background thread. `ThreadedFakeWazzup` stands in for the
provider's API at `WAZZUP_API_URL` and records every message the outbox sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn

from salesbot.app import create_app
from salesbot.settings import Settings
from salesbot.worker import process_options
from salesbot.worker import serve as serve_workers
from tests.fakes.provider_api import FakeWazzupApi, Sent


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class LiveStack:
    def __init__(self, settings: Settings, *, with_worker: bool) -> None:
        self.settings = settings
        self.with_worker = with_worker
        self._socket = _listening_socket()
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-stack", daemon=True)

    def start(self, timeout: float = 30) -> LiveStack:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError("the live server failed to start") from self._error
            if self._server is not None and self._server.started:
                return self
            time.sleep(0.02)
        raise TimeoutError("the live server did not start")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread by start()
            self._error = exc
        finally:
            self._stopped.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            create_app(self.settings), log_level="warning", lifespan="on", access_log=False, log_config=None
        )
        self._server = uvicorn.Server(config)
        tasks = [asyncio.create_task(self._server.serve(sockets=[self._socket]))]
        if self.with_worker:
            # The production worker process (one arq worker per queue); cancelled, it closes its workers itself.
            options = process_options(self.settings)
            tasks.append(asyncio.create_task(serve_workers(self.settings, options, handle_signals=False)))
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task not in done:
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._stopped.wait(30)
        self._socket.close()


class ThreadedFakeWazzup:
    """`tests.fakes.provider_api.FakeWazzupApi` (records sends, refuses a repeated crmMessageId) on a local port,
    served from a thread so that synchronous tests (a browser driving the page) can wait on it."""

    def __init__(self, api_key: str) -> None:
        self.api = FakeWazzupApi(api_key=api_key)
        api = self.api

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, payload = api.handle("POST", self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="fake-wazzup", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v3"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable[[Sent], bool], timeout: float = 60) -> Sent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sent in list(self.api.sent):
                if predicate(sent):
                    return sent
            time.sleep(0.05)
        raise AssertionError(f"the fake Wazzup API received no matching message; it got {self.api.sent}")
