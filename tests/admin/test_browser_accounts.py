"""Two managers in two real browsers: Alice takes a chat over, Bob sees that Alice owns it, and the audit log
says so. Saves the audit log screenshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from arq.connections import ArqRedis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.accounts import service as accounts
from salesbot.settings import Settings
from tests.browser import open_browser, save_screenshot
from tests.live import LiveStack
from tests.reporting.factories import add_message, make_chat

pytestmark = pytest.mark.browser

PASSWORD = "a long shared-nothing password"


@pytest.fixture
def stack(admin_settings: Settings, clean_db: None, redis: ArqRedis) -> Iterator[LiveStack]:
    live = LiveStack(admin_settings, with_worker=False).start()
    yield live
    live.stop()


@pytest.fixture
async def chat_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        await accounts.add_user(session, "alice", PASSWORD, name="Alice")
        await accounts.add_user(session, "bob", PASSWORD, name="Bob")
        chat = await make_chat(session, name="Ivan Petrov")
        await add_message(session, chat, "Can a person call me back about the printers?")
        await session.commit()
    return chat.conversation.id


@pytest.fixture
def second_browser(chromium_paths: tuple[str, str]) -> Iterator[object]:
    with open_browser(chromium_paths) as driver:
        yield driver


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, 30)


def log_in(driver: WebDriver, stack: LiveStack, username: str) -> None:
    driver.get(f"{stack.url}/admin/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(ec.url_contains("/admin/dashboard"))


def test_one_manager_takes_over_and_the_other_sees_who_owns_the_chat(
    chat_id: int, stack: LiveStack, browser: WebDriver, second_browser: WebDriver
) -> None:
    alice, bob = browser, second_browser
    log_in(alice, stack, "alice")
    log_in(bob, stack, "bob")

    alice.get(f"{stack.url}/admin/conversation/details/{chat_id}")
    assert "assignee: nobody" in alice.find_element(By.ID, "sb-assignee").text
    alice.find_element(By.ID, "sb-take-over").click()
    wait(alice).until(ec.text_to_be_present_in_element((By.ID, "sb-owner"), "owner: human (alice)"))

    # Bob's list shows Alice as the assignee; the chat's page says she owns it and what she did.
    bob.get(f"{stack.url}/admin/conversation/list?assignee=alice")
    row = wait(bob).until(ec.presence_of_element_located((By.XPATH, "//tr[td[normalize-space()='Ivan Petrov']]")))
    assert "alice" in row.text
    row.find_element(By.CSS_SELECTOR, "a[href*='/admin/conversation/details/']").click()
    wait(bob).until(ec.presence_of_element_located((By.ID, "sb-owner")))
    assert "owner: human (alice)" in bob.find_element(By.ID, "sb-owner").text
    assert "assignee: alice" in bob.find_element(By.ID, "sb-assignee").text
    event = bob.find_element(By.CSS_SELECTOR, "#sb-events [data-action='take_over']")
    assert "alice" in event.text
    assert "take over" in event.text

    # The audit log lists it, newest first, for Bob too.
    bob.find_element(By.LINK_TEXT, "Audit log").click()
    first_row = wait(bob).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table tbody tr")))
    assert "alice" in first_row.text
    assert "take_over" in first_row.text
    assert str(chat_id) in first_row.text
    # Managers do not see the accounts pages.
    assert not bob.find_elements(By.LINK_TEXT, "Users")
    bob.set_window_size(1440, 700)
    assert save_screenshot(bob, "admin-audit-log.png").stat().st_size > 5_000
