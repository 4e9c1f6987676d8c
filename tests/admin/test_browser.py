"""A manager in a real browser: log in, open a conversation that came in through the Wazzup webhook, take it
over, reply, and the reply reaches the provider. Saves the transcript screenshot shown in the README."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from salesbot.settings import Settings
from tests.admin.conftest import ADMIN_PASSWORD, ADMIN_USER
from tests.browser import save_screenshot
from tests.live import LiveStack, ThreadedFakeWazzup

pytestmark = pytest.mark.browser

WAZZUP_KEY = "wazzup-test-api-key"
WEBHOOK_SECRET = "wazzup-hook-secret-0123456789"
CUSTOMER_CHAT = "79991234567"
CHANNEL_ID = "b96a999e-06f5-4cac-8413-ba999993f981"


@pytest.fixture
def fake_wazzup() -> Iterator[ThreadedFakeWazzup]:
    fake = ThreadedFakeWazzup(WAZZUP_KEY)
    yield fake
    fake.stop()


@pytest.fixture
def stack(
    admin_settings: Settings, fake_wazzup: ThreadedFakeWazzup, clean_db: None, redis: ArqRedis
) -> Iterator[LiveStack]:
    wazzup = admin_settings.wazzup.model_copy(
        update={
            "api_url": fake_wazzup.url,
            "api_key": SecretStr(WAZZUP_KEY),
            "channel_id": CHANNEL_ID,
            "webhook_secret": SecretStr(WEBHOOK_SECRET),
        }
    )
    conversation = admin_settings.conversation.model_copy(update={"debounce_seconds": 0.4, "debounce_max_seconds": 3})
    settings = admin_settings.model_copy(update={"wazzup": wazzup, "conversation": conversation})
    live = LiveStack(settings, with_worker=True).start()
    yield live
    live.stop()


def customer_writes(stack: LiveStack, text: str) -> None:
    payload: dict[str, Any] = {
        "messages": [
            {
                "messageId": str(uuid.uuid4()),
                "dateTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "channelId": CHANNEL_ID,
                "chatType": "whatsapp",
                "chatId": CUSTOMER_CHAT,
                "type": "text",
                "isEcho": False,
                "contact": {"name": "Ivan Petrov"},
                "text": text,
                "status": "inbound",
            }
        ]
    }
    response = httpx.post(f"{stack.url}/webhooks/wazzup/{WEBHOOK_SECRET}", json=payload, timeout=10)
    assert response.status_code == 200, response.text


def wait(driver: WebDriver, timeout: float = 30) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout)


def test_manager_takes_over_and_replies_through_the_outbox(
    demo_catalog: None, stack: LiveStack, fake_wazzup: ThreadedFakeWazzup, browser: WebDriver
) -> None:
    customer_writes(stack, "Hello! Do you have laser printers for a small office?")
    bot_reply = fake_wazzup.wait_for(lambda sent: sent.chat_id == CUSTOMER_CHAT)
    assert bot_reply.text

    # Log in.
    browser.get(f"{stack.url}/admin/conversation/list")
    assert browser.current_url.endswith("/admin/login")
    browser.find_element(By.NAME, "username").send_keys(ADMIN_USER)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(ec.url_contains("/admin/dashboard"))
    assert "Sales funnel" in browser.page_source

    # The conversation list shows the new chat with a masked phone; open it.
    browser.get(f"{stack.url}/admin/conversation/list")
    row = wait(browser).until(ec.presence_of_element_located((By.XPATH, "//tr[td[normalize-space()='Ivan Petrov']]")))
    assert "+79•••••••67" in row.text
    assert CUSTOMER_CHAT not in row.text
    row.find_element(By.CSS_SELECTOR, "a[href*='/admin/conversation/details/']").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "sb-transcript")))
    bubbles = browser.find_elements(By.CSS_SELECTOR, "#sb-transcript .sb-bubble")
    assert [b.get_attribute("class") for b in bubbles][:2] == ["sb-bubble sb-customer", "sb-bubble sb-bot"]
    assert "laser printers" in bubbles[0].text
    assert bot_reply.text
    assert bot_reply.text.split("\n")[0][:30] in bubbles[1].text
    assert bubbles[1].get_attribute("data-status") in ("sent", "delivered", "read")
    turns = browser.find_element(By.ID, "sb-turns").text
    assert "search_products(" in turns  # the bot's turn record: model, tokens, latency, tool calls

    # Take over: the owner badge changes and the hand-back button appears.
    browser.find_element(By.ID, "sb-take-over").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "sb-owner"), "owner: human"))
    assert browser.find_elements(By.ID, "sb-hand-back")

    # Reply as the manager: queued through the outbox, delivered to the provider, shown as sent.
    text = "Hi Ivan, this is Anna from sales. The Xerox B230 is a great fit; I can add free delivery this week."
    browser.find_element(By.ID, "sb-manager-text").send_keys(text)
    browser.find_element(By.ID, "sb-send").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "sb-transcript"), "Anna from sales"))
    delivered = fake_wazzup.wait_for(lambda sent: sent.text == text)
    assert delivered.chat_id == CUSTOMER_CHAT
    assert delivered.key
    assert delivered.key.startswith("manager:")

    deadline = time.monotonic() + 30
    manager_bubble = None
    while time.monotonic() < deadline:
        browser.refresh()
        manager_bubble = browser.find_elements(By.CSS_SELECTOR, "#sb-transcript .sb-manager")
        if manager_bubble and manager_bubble[-1].get_attribute("data-status") in ("sent", "delivered", "read"):
            break
        time.sleep(0.3)
    assert manager_bubble, "the manager's message is not in the transcript"
    assert manager_bubble[-1].get_attribute("data-status") in ("sent", "delivered", "read")
    assert "✓" in manager_bubble[-1].text
    assert len(fake_wazzup.api.sent) == 2  # the bot's reply and the manager's, nothing else

    # Tall enough to show the transcript, the quote panel and the turn records in one picture.
    browser.set_window_size(1440, 1500)
    browser.execute_script("window.scrollTo(0, 0)")
    shot = save_screenshot(browser, "admin-conversation.png")
    assert shot.stat().st_size > 10_000
