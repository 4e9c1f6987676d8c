"""Waiting in tests for something another task or process does: poll a check, fail with what was awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 20, every: float = 0.02
) -> None:
    """Return once `check()` is true; fail the test after `timeout` seconds, naming `what` it waited for."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None
