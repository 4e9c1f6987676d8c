"""Voice notes, photos and documents from customers, end to end: the real app's webhooks, PostgreSQL, Redis, a
real arq worker; the providers' media stores and the transcription endpoint are fakes behind respx that demand
the credentials the real ones do."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from salesbot.media.service import ACKNOWLEDGE_FILE, ASK_TO_TYPE, MEDIA_REPLY_MODEL
from salesbot.models import Direction, MessageMedia
from salesbot.settings import MediaSettings, TranscribeSettings
from tests.fakes.media import JPEG_PHOTO, OGG_VOICE, FakeMediaStore, FakeTranscriber, StoredFile, route
from tests.fakes.pipeline import (
    META_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    Pipeline,
    pipeline,
    pipeline_overrides,
    wazzup_message,
)
from tests.messaging.test_meta_webhook import fixture as meta_fixture
from tests.messaging.test_meta_webhook import post as post_meta

__all__ = ["pipeline", "pipeline_overrides"]

STT_BASE = "https://stt.test/v1"
STT_KEY = "stt-test-key-0123456789"
WAZZUP_STORE = "https://store.wazzup24.com"
TWILIO_API = "https://api.twilio.com"
TWILIO_CDN = "https://mms.twiliocdn.com"
META_LOOKASIDE = "https://lookaside.fbsbx.com"
VOICE_PATH = "/a1/"
CHAT = "79990000001"
TWILIO_FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"

TRANSCRIBER = {"root": {"transcribe": TranscribeSettings(base_url=STT_BASE, api_key=SecretStr(STT_KEY))}}


@pytest.fixture
def transcriber(pipeline: Pipeline) -> FakeTranscriber:
    fake = FakeTranscriber(STT_KEY)
    assert pipeline.router is not None
    route(pipeline.router, STT_BASE, fake)
    return fake


@pytest.fixture
def wazzup_store(pipeline: Pipeline) -> FakeMediaStore:
    store = FakeMediaStore({VOICE_PATH: StoredFile(OGG_VOICE, "audio/ogg")})
    assert pipeline.router is not None
    route(pipeline.router, WAZZUP_STORE, store)
    return store


async def send_voice(pipeline: Pipeline, path: str = VOICE_PATH) -> None:
    # As Wazzup sends a voice note: type audio, no text, a contentUri on its file store.
    response = await pipeline.wazzup(
        {"messages": [wazzup_message(CHAT, "", type="audio", contentUri=f"{WAZZUP_STORE}{path}?filename=voice.ogg")]}
    )
    assert response.status_code == 200, response.text
    await pipeline.worker.drain()


async def kept(pipeline: Pipeline) -> list[MessageMedia]:
    async with pipeline.resources.sessionmaker() as session:
        from sqlalchemy.orm import undefer

        return list(
            await session.scalars(select(MessageMedia).options(undefer(MessageMedia.data)).order_by(MessageMedia.id))
        )


def sent_texts(pipeline: Pipeline) -> list[str | None]:
    return [sent.text for sent in pipeline.wazzup_api.sent]


@pytest.mark.parametrize("pipeline_overrides", [TRANSCRIBER])
async def test_a_voice_note_is_transcribed_and_answered_like_typed_text(
    pipeline: Pipeline, transcriber: FakeTranscriber, wazzup_store: FakeMediaStore
) -> None:
    await send_voice(pipeline)

    # The transcriber got the original bytes as multipart `file` (a name it can tell the format by) and `model`.
    [request] = transcriber.received
    assert request.authorization == f"Bearer {STT_KEY}"
    assert request.data == OGG_VOICE
    assert request.filename == "voice.ogg"
    assert request.content_type == "audio/ogg"
    assert request.model == "whisper-1"
    # The agent saw the transcript as the customer's text.
    [call] = pipeline.generator.calls
    assert call.texts == (transcriber.text,)
    assert sent_texts(pipeline) == [f"Answer to: {transcriber.text}"]
    [media] = await kept(pipeline)
    assert media.status == "stored"
    assert media.transcription == "transcribed"
    assert media.transcript == transcriber.text
    assert media.language == "en"
    assert media.data == OGG_VOICE
    assert media.sha256 == hashlib.sha256(OGG_VOICE).hexdigest()
    [inbound] = await pipeline.messages(direction=Direction.INBOUND)
    assert inbound.processed_at is not None
    assert inbound.text == transcriber.text


@pytest.mark.parametrize("pipeline_overrides", [TRANSCRIBER])
async def test_the_language_spoken_is_the_conversations(
    pipeline: Pipeline, transcriber: FakeTranscriber, wazzup_store: FakeMediaStore
) -> None:
    transcriber.text, transcriber.language = "Здравствуйте, есть ли у вас дрель X100?", "russian"
    await send_voice(pipeline)
    [conversation] = await pipeline.conversations()
    assert conversation.language == "ru"
    assert sent_texts(pipeline) == [f"Answer to: {transcriber.text}"]


@pytest.mark.parametrize(
    ("first_text", "language"),
    [("Hello there", "en"), ("مرحبا، أريد شراء مثقاب", "ar"), ("Добрый день, нужна дрель", "ru")],
)
async def test_without_a_transcriber_the_customer_is_asked_to_type_in_their_language(
    pipeline: Pipeline, wazzup_store: FakeMediaStore, first_text: str, language: str
) -> None:
    await pipeline.wazzup_text(CHAT, first_text)
    await pipeline.worker.drain()
    await send_voice(pipeline)

    # The voice note never reached the agent: the customer got the request to type, in their language.
    assert len(pipeline.generator.calls) == 1
    assert sent_texts(pipeline) == [f"Answer to: {first_text}", ASK_TO_TYPE[language]]
    inbound = await pipeline.messages(direction=Direction.INBOUND)
    assert all(message.processed_at is not None for message in inbound)
    reply = (await pipeline.messages(direction=Direction.OUTBOUND))[-1]
    assert reply.model == MEDIA_REPLY_MODEL
    assert reply.in_reply_to_id == inbound[-1].id
    # Nothing is lost: the voice note is kept for a manager.
    [media] = await kept(pipeline)
    assert media.data == OGG_VOICE
    assert media.transcription == "unconfigured"


@pytest.mark.parametrize("pipeline_overrides", [TRANSCRIBER])
async def test_a_failing_transcriber_is_retried_once_then_the_customer_is_asked_to_type(
    pipeline: Pipeline, transcriber: FakeTranscriber, wazzup_store: FakeMediaStore
) -> None:
    transcriber.outage = 503
    await send_voice(pipeline)

    assert len(transcriber.received) == 2
    assert pipeline.generator.calls == []
    assert sent_texts(pipeline) == [ASK_TO_TYPE["en"]]
    [media] = await kept(pipeline)
    assert media.transcription == "failed"
    assert media.data == OGG_VOICE


@pytest.mark.parametrize("pipeline_overrides", [TRANSCRIBER])
async def test_a_transcriber_that_recovers_on_the_retry_answers(
    pipeline: Pipeline, transcriber: FakeTranscriber, wazzup_store: FakeMediaStore
) -> None:
    transcriber.fail_next.append(500)
    await send_voice(pipeline)
    assert len(transcriber.received) == 2
    assert sent_texts(pipeline) == [f"Answer to: {transcriber.text}"]


@pytest.mark.parametrize(
    "pipeline_overrides", [{"root": {**TRANSCRIBER["root"], "media": MediaSettings(max_bytes=2048)}}]
)
async def test_an_oversize_voice_note_is_refused_without_a_crash(
    pipeline: Pipeline, transcriber: FakeTranscriber, wazzup_store: FakeMediaStore
) -> None:
    await send_voice(pipeline)

    assert transcriber.received == []
    [media] = await kept(pipeline)
    assert media.status == "too_large"
    assert media.data is None
    assert sent_texts(pipeline) == [ASK_TO_TYPE["en"]]


async def test_a_file_of_a_type_not_allowed_is_refused_acknowledged_and_flagged(
    pipeline: Pipeline, wazzup_store: FakeMediaStore
) -> None:
    wazzup_store.files["/a2/"] = StoredFile(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500, "video/mp4")
    payload = wazzup_message(CHAT, "", type="video", contentUri=f"{WAZZUP_STORE}/a2/?filename=clip.mp4")
    assert (await pipeline.wazzup({"messages": [payload]})).status_code == 200
    await pipeline.worker.drain()

    [media] = await kept(pipeline)
    assert media.status == "type_refused"
    assert media.data is None
    assert media.content_type == "video/mp4"
    assert sent_texts(pipeline) == [ACKNOWLEDGE_FILE["en"]]
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention


async def test_a_file_store_that_fails_does_not_lose_the_message(
    pipeline: Pipeline, wazzup_store: FakeMediaStore
) -> None:
    await send_voice(pipeline, path="/expired/")
    [media] = await kept(pipeline)
    assert media.status == "download_failed"
    assert sent_texts(pipeline) == [ASK_TO_TYPE["en"]]


def twilio_image_params() -> list[tuple[str, str]]:
    raw = (TWILIO_FIXTURES / "inbound_image.txt").read_text().strip()
    return parse_qsl(raw, keep_blank_values=True)


def twilio_stores(pipeline: Pipeline) -> tuple[FakeMediaStore, FakeMediaStore]:
    """Twilio's media URL (basic auth, answering a redirect) and the CDN the redirect points to."""
    params = dict(twilio_image_params())
    path = params["MediaUrl0"].removeprefix(TWILIO_API)
    api = FakeMediaStore(
        {path: StoredFile(JPEG_PHOTO, "image/jpeg")}, basic=(TWILIO_SID, TWILIO_TOKEN), redirect_to=TWILIO_CDN
    )
    cdn = FakeMediaStore({path: StoredFile(JPEG_PHOTO, "image/jpeg")})
    assert pipeline.router is not None
    route(pipeline.router, TWILIO_API, api)
    route(pipeline.router, TWILIO_CDN, cdn)
    return api, cdn


async def test_a_twilio_photo_is_fetched_with_basic_auth_acknowledged_and_flagged(
    pipeline: Pipeline,
) -> None:
    api, cdn = twilio_stores(pipeline)
    response = await pipeline.twilio(twilio_image_params())
    assert response.status_code == 200, response.text
    await pipeline.worker.drain()

    [(_, authorization)] = api.requests
    assert authorization is not None
    assert authorization.startswith("Basic ")
    # The credentials stay with Twilio: the redirected download carries none.
    assert [header for _, header in cdn.requests] == [None]
    [media] = await kept(pipeline)
    assert media.status == "stored"
    assert media.content_type == "image/jpeg"
    assert media.data == JPEG_PHOTO
    assert [sent.text for sent in pipeline.twilio_api.sent] == [ACKNOWLEDGE_FILE["en"]]
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention


async def test_the_twilio_media_store_refuses_a_download_without_credentials(pipeline: Pipeline) -> None:
    api, _ = twilio_stores(pipeline)
    from salesbot.messaging.base import Media, MediaLimits, MediaUnavailableError
    from salesbot.messaging.twilio import TwilioProvider
    from salesbot.settings import TwilioSettings

    settings = pipeline.resources.settings.twilio
    wrong = TwilioProvider(
        TwilioSettings(**{**settings.model_dump(), "auth_token": SecretStr("wrong-token")}),
        pipeline.resources.http,
        public_base_url="https://bot.example.test",
    )
    url = dict(twilio_image_params())["MediaUrl0"]
    limits = MediaLimits(max_bytes=1 << 20, allowed_types=("image/*",))
    with pytest.raises(MediaUnavailableError, match="401"):
        await wrong.download_media(Media(url=url), limits=limits)
    assert api.requests[-1][1] is not None


@pytest.mark.parametrize("pipeline_overrides", [TRANSCRIBER])
async def test_a_meta_voice_note_is_fetched_in_two_steps_with_the_bearer_token(
    pipeline: Pipeline, transcriber: FakeTranscriber
) -> None:
    body = meta_fixture("voice", message_id="wamid.voice-media-1")
    audio: dict[str, Any] = body["entry"][0]["changes"][0]["value"]["messages"][0]["audio"]
    media_id = audio["id"]
    path = "/whatsapp_business/attachments/"
    pipeline.meta_api.media[media_id] = {
        "url": f"{META_LOOKASIDE}{path}?mid={media_id}&ext=1697043473&hash=ATuZ3mYzcnK9",
        "mime_type": "audio/ogg; codecs=opus",
        "sha256": hashlib.sha256(OGG_VOICE).hexdigest(),
        "file_size": len(OGG_VOICE),
    }
    lookaside = FakeMediaStore({path: StoredFile(OGG_VOICE, "audio/ogg")}, bearer=META_TOKEN)
    assert pipeline.router is not None
    route(pipeline.router, META_LOOKASIDE, lookaside)

    response = await post_meta(pipeline, body)
    assert response.status_code == 200, response.text
    await pipeline.worker.drain()

    assert pipeline.meta_api.media_lookups == [media_id]
    assert lookaside.requests == [(path, f"Bearer {META_TOKEN}")]
    assert [r.data for r in transcriber.received] == [OGG_VOICE]
    assert [sent.text for sent in pipeline.meta_api.sent] == [f"Answer to: {transcriber.text}"]


async def test_a_simulated_voice_note_is_transcribed_and_answered(pipeline: Pipeline) -> None:
    """The simulator's audio upload: the file is kept by the console provider, the worker fetches it from there."""
    transcriber = FakeTranscriber(STT_KEY, text="Do you deliver to Dubai?", language="en")
    assert pipeline.router is not None
    route(pipeline.router, STT_BASE, transcriber)
    pipeline.resources.settings.transcribe.base_url = STT_BASE
    pipeline.resources.settings.transcribe.api_key = SecretStr(STT_KEY)

    upload = await pipeline.client.post(
        "/simulator/api/media", files={"file": ("note.webm", OGG_VOICE[:3000], "audio/webm")}
    )
    assert upload.status_code == 200, upload.text
    reference = upload.json()["media"]
    sent = await pipeline.console("+15550100", "", media=reference, media_type="audio")
    assert sent.status_code == 200, sent.text
    await pipeline.worker.drain()

    [request] = transcriber.received
    assert request.data == OGG_VOICE[:3000]
    assert request.filename == "note.webm"
    history = await pipeline.client.get("/simulator/api/history", params={"phone": "+15550100"})
    texts = [(m["direction"], m["text"]) for m in history.json()["messages"]]
    assert texts == [("inbound", "Do you deliver to Dubai?"), ("outbound", "Answer to: Do you deliver to Dubai?")]


async def test_a_photo_with_a_caption_gets_the_agents_answer_and_a_manager(
    pipeline: Pipeline, wazzup_store: FakeMediaStore
) -> None:
    wazzup_store.files["/p1/"] = StoredFile(JPEG_PHOTO, "image/jpeg")
    payload = wazzup_message(
        CHAT, "Do you have this one?", type="image", contentUri=f"{WAZZUP_STORE}/p1/?filename=f9eb7a1d.jpg"
    )
    assert (await pipeline.wazzup({"messages": [payload]})).status_code == 200
    await pipeline.worker.drain()

    assert sent_texts(pipeline) == ["Answer to: Do you have this one?"]
    [conversation] = await pipeline.conversations()
    assert conversation.needs_attention
    [media] = await kept(pipeline)
    assert media.data == JPEG_PHOTO


async def test_a_sticker_is_left_to_the_agent(pipeline: Pipeline) -> None:
    response = await post_meta(pipeline, meta_fixture("sticker", message_id="wamid.sticker-media-1"))
    assert response.status_code == 200, response.text
    await pipeline.worker.drain()

    [call] = pipeline.generator.calls
    assert call.content_types == ("sticker",)
    [conversation] = await pipeline.conversations()
    assert not conversation.needs_attention
