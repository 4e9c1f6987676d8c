"""Customer files before the agent runs: fetch, keep, transcribe (`prepare`), and what the turn says about them
(`answering`).

`prepare` runs in the turn job before the turn's transaction: downloads and speech-to-text are slow network calls
that must not hold the turn's row locks. Each message's files are committed with the message's new text (the
transcript) in one short transaction, so a retried job never fetches a file twice. `answering` wraps the reply
generator: a burst made only of voice notes that could not be transcribed gets "please type" (in the customer's
language) instead of an agent run, bare photos and documents get an acknowledgement, and every file the agent
cannot read flags the chat for a manager, who sees it in the admin transcript.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from salesbot.agent.language import conversation_language
from salesbot.agent.reply import AgentReply, ReplyGenerator, ReplyRequest
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.media import repository
from salesbot.media.transcriber import TranscriptionFailedError, transcribe
from salesbot.messaging.base import (
    DownloadedMedia,
    Media,
    MediaLimits,
    MediaRefusedError,
    MediaUnavailableError,
    MessagingProvider,
)
from salesbot.messaging.registry import Providers
from salesbot.models import Conversation, Message, MessageMedia
from salesbot.resources import Resources

log = get_logger(__name__)

# The turn record of replies `answering` writes without the agent.
MEDIA_REPLY_MODEL = "salesbot-media"

ASK_TO_TYPE = {
    "en": "Sorry, I can't listen to voice messages right now. Could you please type your message?",
    "ar": "عذرًا، لا يمكنني الاستماع إلى الرسائل الصوتية الآن. هل يمكنك كتابة رسالتك من فضلك؟",
    "ru": "Извините, сейчас я не могу прослушать голосовое сообщение. Напишите, пожалуйста, текстом.",
}
ACKNOWLEDGE_FILE = {
    "en": "Thank you, I have received your file. A manager will look at it and get back to you.",
    "ar": "شكرًا لك، لقد استلمت ملفك. سيطّلع عليه أحد المديرين ويعود إليك.",
    "ru": "Спасибо, я получил ваш файл. Менеджер посмотрит его и свяжется с вами.",
}


def limits(resources: Resources) -> MediaLimits:
    settings = resources.settings.media
    return MediaLimits(
        max_bytes=settings.max_bytes,
        allowed_types=tuple(settings.allowed_types),
        timeout_seconds=settings.download_timeout_seconds,
    )


def is_voice(message: Message) -> bool:
    return message.content_type in ("audio", "voice", "ptt")


# Files that say something without needing a manager: the agent sees "(sent a sticker)" and answers.
_NOT_FOR_A_MANAGER = frozenset({"sticker"})


async def prepare(resources: Resources, providers: Providers, conversation_id: int) -> int:
    """Fetch (and transcribe) the files of the conversation's waiting customer messages; returns how many."""
    async with unit_of_work(resources.sessionmaker) as session:
        messages = await repository.messages_to_prepare(session, conversation_id)
    count = 0
    for message in messages:
        provider = providers.get(message.channel)
        rows = [
            await _fetch(resources, provider, message, position, item) for position, item in enumerate(message.media)
        ]
        await _keep(resources, message.id, rows)
        count += len(rows)
    return count


async def _fetch(
    resources: Resources, provider: MessagingProvider, message: Message, position: int, item: dict[str, object]
) -> MessageMedia:
    url, hint = item.get("url"), item.get("content_type")
    media = Media(url=url if isinstance(url, str) else "", content_type=hint if isinstance(hint, str) else None)
    row = MessageMedia(message_id=message.id, position=position, content_type=media.content_type)
    try:
        downloaded: DownloadedMedia = await provider.download_media(media, limits=limits(resources))
    except MediaRefusedError as exc:
        row.status, row.error = exc.reason, str(exc)[:500]
        row.content_type = exc.content_type or row.content_type
        log.info("media.refused", message=message.id, reason=exc.reason)
        return row
    except MediaUnavailableError as exc:
        row.status, row.error = "download_failed", str(exc)[:500]
        log.warning("media.download_failed", message=message.id, channel=message.channel.value, problem=str(exc))
        return row
    row.status, row.content_type, row.filename = "stored", downloaded.content_type, downloaded.filename
    row.data, row.size = downloaded.data, len(downloaded.data)
    row.sha256 = hashlib.sha256(downloaded.data).hexdigest()
    log.info("media.stored", message=message.id, content_type=row.content_type, size=row.size)
    if downloaded.content_type.startswith("audio/"):
        await _transcribe(resources, row, downloaded)
    return row


async def _transcribe(resources: Resources, row: MessageMedia, downloaded: DownloadedMedia) -> None:
    settings = resources.settings.transcribe
    if not settings.configured:
        row.transcription = "unconfigured"
        return
    try:
        transcript = await transcribe(
            resources.http,
            settings,
            downloaded.data,
            filename=downloaded.filename,
            content_type=downloaded.content_type,
        )
    except TranscriptionFailedError as exc:
        row.transcription, row.error = "failed", str(exc)[:500]
        log.warning("media.transcription_failed", message=row.message_id, problem=str(exc))
        return
    if not transcript.text:
        row.transcription, row.error = "failed", "nothing was recognised"
        return
    row.transcription, row.transcript, row.language = "transcribed", transcript.text, transcript.language
    log.info("media.transcribed", message=row.message_id, language=transcript.language, chars=len(transcript.text))


async def _keep(resources: Resources, message_id: int, rows: Sequence[MessageMedia]) -> None:
    """Store the files; a transcript becomes the message's text (what consent, the agent and its PII masking read)."""
    async with unit_of_work(resources.sessionmaker) as session:
        message = await session.get(Message, message_id, with_for_update=True)
        if message is None or message.processed_at is not None or await repository.prepared(session, message_id):
            return
        session.add_all(rows)
        transcripts = [row.transcript for row in rows if row.transcript]
        if transcripts:
            message.text = "\n".join([message.text.strip(), *transcripts]).strip()
        language = next((row.language for row in rows if row.language), None)
        if language is not None:
            conversation = await session.get(Conversation, message.conversation_id)
            if conversation is not None:
                conversation.language = language


async def _language(request: ReplyRequest) -> str:
    """The language the customer last wrote (or spoke) in; the conversation's, else English."""
    texts = await repository.recent_customer_texts(request.session, request.conversation.id)
    return conversation_language(texts, current=request.conversation.language)


def answering(generator: ReplyGenerator) -> ReplyGenerator:
    """`generator`, aware of the files in the burst (see the module docstring)."""

    async def reply(request: ReplyRequest) -> AgentReply:
        # Only a voice note's kept file matters here (was it transcribed?): a text-only burst reads nothing.
        voice_notes = [message.id for message in request.new_messages if is_voice(message)]
        rows = await repository.media_of(request.session, voice_notes)
        by_message: dict[int, list[MessageMedia]] = {}
        for row in rows:
            by_message.setdefault(row.message_id, []).append(row)
        unheard: list[Message] = []
        files: list[Message] = []
        for message in request.new_messages:
            kept = by_message.get(message.id, [])
            if is_voice(message) and not any(row.transcription == "transcribed" for row in kept):
                unheard.append(message)
            elif message.media and not is_voice(message) and message.content_type not in _NOT_FOR_A_MANAGER:
                files.append(message)
        if files:
            # The agent reads text only: a manager looks at photos and documents (visible in the admin).
            request.conversation.needs_attention = True
            log.info("media.flagged", conversation=request.conversation.id, files=len(files))
        unanswered = {message.id for message in unheard}
        bare = {message.id for message in files if not message.text.strip()}
        without_agent = all(message.id in unanswered | bare for message in request.new_messages)
        language = await _language(request) if unheard or without_agent else "en"
        ask = ASK_TO_TYPE.get(language, ASK_TO_TYPE["en"]) if unheard else ""
        if without_agent:
            text = ask or ACKNOWLEDGE_FILE.get(language, ACKNOWLEDGE_FILE["en"])
            log.info("media.answered_without_agent", conversation=request.conversation.id, unheard=len(unheard))
            return AgentReply(text=text, model=MEDIA_REPLY_MODEL)
        answer = await generator(request)
        if ask and answer.text.strip():
            answer = replace(answer, text=f"{answer.text}\n\n{ask}")
        return answer

    return reply
