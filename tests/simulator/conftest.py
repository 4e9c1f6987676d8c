from __future__ import annotations

from collections.abc import Iterator

import pytest
from arq.connections import ArqRedis

from salesbot.settings import Settings
from tests.browser import browser, chromium_paths, demo_catalog  # noqa: F401  (fixtures for the browser tests)
from tests.live import LiveStack


@pytest.fixture
def sim_settings(settings: Settings) -> Settings:
    """Console provider on, a debounce window short enough for tests and long enough for a burst of sends."""
    conversation = settings.conversation.model_copy(update={"debounce_seconds": 1.0, "debounce_max_seconds": 4.0})
    return settings.model_copy(update={"console_enabled": True, "conversation": conversation})


@pytest.fixture
def live(sim_settings: Settings, clean_db: None, redis: ArqRedis) -> Iterator[LiveStack]:
    """The API and a worker on a real port (tables truncated, Redis flushed afterwards)."""
    stack = LiveStack(sim_settings, with_worker=True).start()
    yield stack
    stack.stop()
