"""Speech to text through an OpenAI-compatible `POST {TRANSCRIBE_BASE_URL}/audio/transcriptions`.

One retry on a timeout, a network error or a 5xx (a 4xx will not get better); after that the voice note counts
as not transcribed and the customer is asked to type.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

import httpx

from salesbot.kit.logging import get_logger
from salesbot.settings import TranscribeSettings

log = get_logger(__name__)

ATTEMPTS = 2
# WhatsApp voice notes are Ogg/Opus; the endpoint tells formats apart by the file name's extension.
_EXTENSIONS = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "audio/amr": ".amr",
}
# Whisper reports the language by name ("russian"); other servers by ISO 639-1 code.
_LANGUAGE_NAMES = {
    "english": "en",
    "arabic": "ar",
    "russian": "ru",
    "spanish": "es",
    "french": "fr",
    "german": "de",
    "turkish": "tr",
    "portuguese": "pt",
    "italian": "it",
    "ukrainian": "uk",
    "persian": "fa",
    "hindi": "hi",
    "urdu": "ur",
    "chinese": "zh",
}


@dataclass(frozen=True)
class Transcript:
    text: str
    # ISO 639-1 when the server reported a language we can map.
    language: str | None


class TranscriptionFailedError(Exception):
    pass


def audio_filename(filename: str | None, content_type: str) -> str:
    if filename and "." in filename:
        return filename
    mime = content_type.split(";")[0].strip().lower()
    return "voice" + (_EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ".ogg")


def language_code(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    name = value.strip().lower()
    if len(name) == 2 and name.isalpha():
        return name
    return _LANGUAGE_NAMES.get(name)


async def transcribe(
    http: httpx.AsyncClient, settings: TranscribeSettings, data: bytes, *, filename: str | None, content_type: str
) -> Transcript:
    """The text spoken in `data`; raises `TranscriptionFailedError` (after one retry where retrying makes sense)."""
    url = settings.base_url.rstrip("/") + "/audio/transcriptions"
    headers = {}
    if settings.api_key.get_secret_value():
        headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    files = {"file": (audio_filename(filename, content_type), data, content_type)}
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = await http.post(
                url, headers=headers, files=files, data={"model": settings.model}, timeout=settings.timeout_seconds
            )
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        else:
            if response.status_code < 400:
                try:
                    body = response.json()
                except ValueError as exc:
                    raise TranscriptionFailedError("the answer is not JSON") from exc
                text = body.get("text") if isinstance(body, dict) else None
                if not isinstance(text, str):
                    raise TranscriptionFailedError("the answer has no text")
                return Transcript(text.strip(), language_code(body.get("language")))
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break
        log.warning("media.transcription_error", attempt=attempt, problem=problem)
    raise TranscriptionFailedError(problem)
