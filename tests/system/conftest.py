"""Fixtures of the system tests: session services (PostgreSQL, Redis, seeded template database) and `make_system`.

Each scenario records what it measured in `reliability` (recovery times, outage counts, which model answered);
the numbers are printed at the end of the run and, with `SALESBOT_RELIABILITY_REPORT=path`, written as JSON.
Tests assert correctness only; times are reported, never asserted.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.system.harness import Services, System, SystemConfig, opened_system

_REPORT: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="session")
def system_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = Services(tmp_path_factory.mktemp("system-services"))
    services.start()
    yield services
    services.stop()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Numbers this scenario measured (printed after the run)."""
    return _REPORT.setdefault(request.node.name, {})


MakeSystem = Callable[..., AbstractAsyncContextManager[System]]


@pytest.fixture
def make_system(system_services: Services, tmp_path: Path) -> MakeSystem:
    @asynccontextmanager
    async def make(config: SystemConfig | None = None) -> AsyncIterator[System]:
        async with opened_system(system_services, tmp_path, config or SystemConfig()) as system:
            yield system

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _REPORT:
        return
    terminalreporter.section("salesbot reliability report")
    for name, numbers in _REPORT.items():
        terminalreporter.write_line(f"{name}:")
        for key, value in numbers.items():
            terminalreporter.write_line(f"    {key}: {value}")
    target = os.environ.get("SALESBOT_RELIABILITY_REPORT")
    if target:
        Path(target).write_text(json.dumps(_REPORT, indent=2, default=str) + "\n")
