"""A simulated voice note in a real browser: the simulator's 🎤 file input, a fake OpenAI-compatible transcription
server on a local port, the real worker and the offline agent answering the transcript."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from salesbot.media.service import ASK_TO_TYPE
from salesbot.settings import Settings, TranscribeSettings
from tests.fakes.media import OGG_VOICE, FakeTranscriber
from tests.fakes.server import local_server, serve_in_thread
from tests.live import LiveStack

pytestmark = pytest.mark.browser

STT_KEY = "stt-browser-key-0123456789"


@pytest.fixture
def transcriber() -> Iterator[tuple[FakeTranscriber, str]]:
    fake = FakeTranscriber(STT_KEY, text="Hello, what laser printers do you have?", language="english")

    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[int]:
        async with local_server(fake) as port:
            yield port

    with serve_in_thread(serving, name="fake-transcriber") as port:
        yield fake, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def voice_live(
    sim_settings: Settings, transcriber: tuple[FakeTranscriber, str], clean_db: None, redis: ArqRedis
) -> Iterator[LiveStack]:
    settings = sim_settings.model_copy(
        update={"transcribe": TranscribeSettings(base_url=transcriber[1], api_key=SecretStr(STT_KEY))}
    )
    stack = LiveStack(settings, with_worker=True).start()
    yield stack
    stack.stop()


def test_a_voice_note_from_the_simulator_is_transcribed_and_answered(
    demo_catalog: None,
    voice_live: LiveStack,
    transcriber: tuple[FakeTranscriber, str],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    fake, _ = transcriber
    note = tmp_path / "note.ogg"
    note.write_bytes(OGG_VOICE)
    browser.get(f"{voice_live.url}/simulator")
    browser.find_element(By.ID, "sim-start").click()
    wait = WebDriverWait(browser, 60)
    wait.until(ec.element_to_be_clickable((By.ID, "sim-input")))

    file_input = browser.find_element(By.ID, "sim-file")
    # The input sits inside the 🎤 label; a test hands it the file directly, as the file picker would.
    browser.execute_script("arguments[0].hidden = false;", file_input)
    file_input.send_keys(str(note))

    sent = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#sim-messages .bubble.out")))
    assert "voice note: note.ogg" in sent.text
    reply = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#sim-messages .bubble.in")))
    # The offline agent answered the transcript (not the "please type" fallback).
    assert reply.text.strip()
    assert ASK_TO_TYPE["en"] not in reply.text
    [received] = fake.received
    assert received.data == OGG_VOICE
    assert received.filename == "note.ogg"
    assert received.authorization == f"Bearer {STT_KEY}"
