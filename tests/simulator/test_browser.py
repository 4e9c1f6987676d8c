"""A newcomer in a real browser: the simulator page, several messages in a row, "typing", one bot reply.
Saves the simulator screenshot shown in the README."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import save_screenshot
from tests.live import LiveStack

pytestmark = pytest.mark.browser


def test_chat_in_the_simulator_and_receive_one_reply_to_a_burst(
    demo_catalog: None, live: LiveStack, browser: WebDriver
) -> None:
    browser.get(f"{live.url}/simulator")
    phone = browser.find_element(By.ID, "sim-phone")
    assert phone.get_attribute("value").startswith("+1555")  # a fresh test number is offered
    phone.clear()
    phone.send_keys("+971 50 123 4567")
    browser.find_element(By.ID, "sim-name").send_keys("Layla")
    browser.find_element(By.ID, "sim-start").click()
    wait = WebDriverWait(browser, 60)
    wait.until(ec.element_to_be_clickable((By.ID, "sim-input")))
    assert browser.find_element(By.ID, "sim-title").text == "Layla · +971501234567"

    box = browser.find_element(By.ID, "sim-input")
    for text in ("Hi!", "I need a laser printer for a small office", "What do you have?"):
        box.send_keys(text, Keys.ENTER)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sim-messages .bubble.out")) == 3
    # While the turn runs the page says so.
    wait.until(ec.visibility_of_element_located((By.ID, "sim-typing")))
    assert browser.find_element(By.ID, "sim-status").text == "typing…"

    reply = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#sim-messages .bubble.in")))
    assert reply.text.strip()
    wait.until(ec.invisibility_of_element_located((By.ID, "sim-typing")))
    # Three messages in one burst, one answer.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sim-messages .bubble.in")) == 1
    assert browser.find_element(By.ID, "sim-status").text == "online"

    # The chat is listed, and reopening it shows the transcript from the database.
    browser.refresh()
    item = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".chat-item[data-phone='+971501234567']")))
    assert "Layla" in item.text
    item.click()
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#sim-messages .bubble.in")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sim-messages .bubble.out")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sim-messages .bubble.in")) == 1

    shot = save_screenshot(browser, "simulator.png")
    assert shot.stat().st_size > 10_000
