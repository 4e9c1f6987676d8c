"""Headless Chromium for the browser tests, driven by Selenium through the system chromedriver.

Debian's `chromium` and `chromium-driver` packages are used (a tool's own browser download does not work on
the project's machines). When they are missing and the tests run as root on Debian/Ubuntu (CI), they are
installed with apt-get; the tests skip, saying why, only where no Chromium can be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.knowledge.embeddings import get_embedder
from salesbot.knowledge.seed import seed_demo_data
from salesbot.settings import Settings

# The README's screenshots are refreshed only on request (`SALESBOT_UPDATE_SCREENSHOTS=1 make test`), so an
# ordinary test run never modifies tracked files; otherwise they go to a temporary folder.
README_SCREENSHOTS = Path(__file__).resolve().parents[1] / "bench" / "screenshots"
SCREENSHOTS = (
    README_SCREENSHOTS
    if os.environ.get("SALESBOT_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "salesbot-screenshots"
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
    "--lang=en-US",
)


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    return None


def find_chromium() -> tuple[str, str] | None:
    browser, driver = _which(CHROMIUM_NAMES), _which(DRIVER_NAMES)
    return (browser, driver) if browser and driver else None


def ensure_chromium() -> tuple[str, str]:
    """(browser, chromedriver) paths; installs Debian's packages when possible, skips when not."""
    found = find_chromium()
    if found:
        return found
    can_install = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    if not can_install:
        pytest.skip(
            "browser tests need Chromium and chromedriver: install Debian's `chromium` and `chromium-driver` "
            "packages (apt-get install chromium chromium-driver), or run the tests as root on Debian to install them"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            pytest.skip(f"Chromium could not be installed ({' '.join(command)}): {result.stderr.strip()[-300:]}")
    found = find_chromium()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium/chromedriver binary was found")
    return found


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    return ensure_chromium()


@contextmanager
def open_browser(chromium_paths: tuple[str, str]) -> Iterator[object]:
    """A fresh headless Chromium with an empty profile (a `selenium.webdriver.Chrome`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths
    with tempfile.TemporaryDirectory(prefix="sb-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def browser(chromium_paths: tuple[str, str]) -> Iterator[object]:
    """A fresh headless Chromium with an empty profile (a `selenium.webdriver.Chrome`)."""
    with open_browser(chromium_paths) as driver:
        yield driver


def save_screenshot(driver: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


@pytest.fixture
async def demo_catalog(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """The demo business's catalog and knowledge, so the bot has real products to talk about on screen."""
    async with sessionmaker() as session:
        await seed_demo_data(session, get_embedder(settings))
        await session.commit()
