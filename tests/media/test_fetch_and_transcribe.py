"""The pieces under the pipeline: the limited download, the transcription client, the console's kept files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from salesbot.media.transcriber import TranscriptionFailedError, audio_filename, language_code, transcribe
from salesbot.messaging.base import (
    MalformedWebhookError,
    Media,
    MediaLimits,
    MediaRefusedError,
    MediaUnavailableError,
    WebhookRequest,
)
from salesbot.messaging.console import ConsoleProvider, store_media
from salesbot.messaging.download import fetch_limited
from salesbot.settings import TranscribeSettings
from tests.fakes.media import OGG_VOICE, FakeTranscriber, route

STORE = "https://files.test"
LIMITS = MediaLimits(max_bytes=4096, allowed_types=("audio/*", "image/*", "application/pdf"))


async def _lying(request: Request) -> Response:
    """A file without Content-Length that goes on past any limit (chunked)."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"\x00" * 1024

    return StreamingResponse(chunks(), media_type="audio/ogg")


async def _declared(request: Request) -> Response:
    return Response(b"\x00" * 5000, media_type="image/png")


async def _html(request: Request) -> Response:
    return Response(b"<script>alert(1)</script>", media_type="text/html")


STORE_APP = Starlette(routes=[Route("/lying", _lying), Route("/declared", _declared), Route("/page", _html)])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def store() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        route(router, STORE, STORE_APP)
        yield router


@pytest.mark.usefixtures("store")
@pytest.mark.parametrize(
    ("path", "reason"), [("/lying", "too_large"), ("/declared", "too_large"), ("/page", "type_refused")]
)
async def test_limits_refuse_before_keeping_the_file(http: httpx.AsyncClient, path: str, reason: str) -> None:
    with pytest.raises(MediaRefusedError) as refused:
        await fetch_limited(http, f"{STORE}{path}", limits=LIMITS)
    assert refused.value.reason == reason


@pytest.mark.usefixtures("store")
async def test_a_missing_file_or_a_strange_url_is_unavailable(http: httpx.AsyncClient) -> None:
    with pytest.raises(MediaUnavailableError, match="404"):
        await fetch_limited(http, f"{STORE}/gone", limits=LIMITS)
    with pytest.raises(MediaUnavailableError):
        await fetch_limited(http, "file:///etc/passwd", limits=LIMITS)


def test_limits_match_families_and_ignore_parameters() -> None:
    assert LIMITS.allows("audio/ogg; codecs=opus")
    assert LIMITS.allows("IMAGE/JPEG")
    assert LIMITS.allows("application/pdf")
    assert not LIMITS.allows("application/pdf-evil")
    assert not LIMITS.allows("video/mp4")


def test_the_file_name_tells_the_transcriber_the_format() -> None:
    assert audio_filename(None, "audio/ogg; codecs=opus") == "voice.ogg"
    assert audio_filename("note.m4a", "audio/mp4") == "note.m4a"
    assert audio_filename("", "audio/mpeg") == "voice.mp3"
    assert language_code("Russian") == "ru"
    assert language_code("ar") == "ar"
    assert language_code("klingon") is None


STT = TranscribeSettings(base_url="https://stt.test/v1/", api_key=SecretStr("k"), model="whisper-large-v3")


async def test_a_client_error_is_not_retried(http: httpx.AsyncClient) -> None:
    fake = FakeTranscriber("wrong-key")
    with respx.mock(assert_all_mocked=True) as router:
        route(router, "https://stt.test/v1", fake)
        with pytest.raises(TranscriptionFailedError, match="401"):
            await transcribe(http, STT, OGG_VOICE, filename=None, content_type="audio/ogg")
    assert len(fake.received) == 1
    assert fake.received[0].model == "whisper-large-v3"


async def test_a_timeout_is_retried_once(http: httpx.AsyncClient) -> None:
    calls: list[httpx.Request] = []

    def timeout(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    with respx.mock(assert_all_mocked=True) as router:
        router.post("https://stt.test/v1/audio/transcriptions").mock(side_effect=timeout)
        with pytest.raises(TranscriptionFailedError, match="ReadTimeout"):
            await transcribe(http, STT, OGG_VOICE, filename=None, content_type="audio/ogg")
    assert len(calls) == 2


async def test_the_console_keeps_an_uploaded_file_for_the_worker(redis: ArqRedis) -> None:
    provider = ConsoleProvider(redis, enabled=True)
    reference = await store_media(redis, OGG_VOICE, content_type="audio/ogg", filename="note.ogg")
    body = json.dumps({"phone": "+15550100", "media": reference, "media_type": "audio"}).encode()
    [message] = provider.parse(WebhookRequest("/webhooks/console", "", {}, body))
    assert message.content_type == "audio"  # type: ignore[union-attr]
    [media] = message.media  # type: ignore[union-attr]
    downloaded = await provider.download_media(media, limits=LIMITS)
    assert downloaded.data == OGG_VOICE
    assert downloaded.filename == "note.ogg"
    with pytest.raises(MediaUnavailableError):
        await provider.download_media(Media(url="console:" + "0" * 64), limits=LIMITS)
    with pytest.raises(MediaRefusedError):
        await provider.download_media(media, limits=MediaLimits(max_bytes=1024, allowed_types=("audio/*",)))


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "+15550100", "media": "https://evil.test/x"},
        {"phone": "+15550100", "media": 3},
        {"phone": "+15550100", "media": "console:" + "0" * 64, "media_type": "spreadsheet"},
        {"phone": "+15550100", "text": ""},
    ],
)
async def test_the_console_refuses_bad_media_references(redis: ArqRedis, body: dict[str, object]) -> None:
    provider = ConsoleProvider(redis, enabled=True)
    with pytest.raises(MalformedWebhookError):
        provider.parse(WebhookRequest("/webhooks/console", "", {}, json.dumps(body).encode()))
