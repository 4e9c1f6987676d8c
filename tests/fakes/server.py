"""Serving the fakes over real HTTP on 127.0.0.1 (for subprocess workers and browsers)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        # The test process keeps its own signal handling.
        yield


@contextlib.asynccontextmanager
async def local_server(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app on a free port of 127.0.0.1 for the duration of the block; yields the port."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False, backlog=2048
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 10)


@contextlib.contextmanager
def serve_in_thread(serving: Any, *, name: str = "fake-server") -> Iterator[Any]:
    """Run an async context manager factory (`serving`) on a fresh event loop in a thread, until exit."""
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        async with serving() as value:
            state["value"] = value
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the caller below
            state["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    started.wait(30)
    if "value" not in state:
        raise RuntimeError(f"{name} did not start") from state.get("error")
    try:
        yield state["value"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)
