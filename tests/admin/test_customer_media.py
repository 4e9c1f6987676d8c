"""Files customers sent, in the conversation page: audio player, photo, document link, served only to a manager."""

from __future__ import annotations

import hashlib
import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesbot.models import MessageMedia
from tests.fakes.media import JPEG_PHOTO, OGG_VOICE
from tests.reporting.factories import add_message, make_chat

Sessionmaker = async_sessionmaker[AsyncSession]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def kept(message_id: int, position: int, data: bytes | None, content_type: str, **extra: object) -> MessageMedia:
    return MessageMedia(
        message_id=message_id,
        position=position,
        status="stored" if data is not None else "too_large",
        content_type=content_type,
        data=data,
        size=len(data) if data is not None else None,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        **extra,
    )


async def chat_with_files(sessionmaker: Sessionmaker) -> tuple[int, list[int]]:
    async with sessionmaker() as session:
        chat = await make_chat(session)
        voice = await add_message(session, chat, "Do you have the X100?")
        photo = await add_message(session, chat, "")
        rows = [
            kept(voice.id, 0, OGG_VOICE, "audio/ogg", transcription="transcribed", transcript="Do you have the X100?"),
            kept(photo.id, 0, JPEG_PHOTO, "image/jpeg"),
            kept(photo.id, 1, PDF, "application/pdf", filename="specs.pdf"),
            kept(photo.id, 2, None, "video/mp4"),
        ]
        session.add_all(rows)
        await session.commit()
        return chat.conversation.id, [row.id for row in rows]


async def test_the_transcript_shows_each_file_and_serves_it_to_a_manager(
    manager: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    conversation_id, (voice, photo, pdf, refused) = await chat_with_files(sessionmaker)
    page = await manager.get(f"/admin/conversation/details/{conversation_id}")
    assert page.status_code == 200
    base = f"/admin/conversation/{conversation_id}/media"
    assert re.search(rf'<audio [^>]*src="[^"]*{base}/{voice}"', page.text)
    assert re.search(rf'<img src="[^"]*{base}/{photo}"', page.text)
    assert re.search(rf'href="[^"]*{base}/{pdf}"[^>]*>specs.pdf<', page.text)
    assert "file not kept: too_large (video/mp4)" in page.text

    for media_id, data, content_type in ((voice, OGG_VOICE, "audio/ogg"), (photo, JPEG_PHOTO, "image/jpeg")):
        served = await manager.get(f"{base}/{media_id}")
        assert served.status_code == 200
        assert served.content == data
        assert served.headers["content-type"] == content_type
        assert served.headers["x-content-type-options"] == "nosniff"
    # Not kept, of another conversation, or not a number: nothing is served.
    assert (await manager.get(f"{base}/{refused}")).status_code == 404
    assert (await manager.get(f"/admin/conversation/{conversation_id + 1}/media/{photo}")).status_code == 404
    assert (await manager.get(f"{base}/not-a-number")).status_code == 404


async def test_files_are_not_served_without_a_login(anonymous: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    conversation_id, (_, photo, _, _) = await chat_with_files(sessionmaker)
    response = await anonymous.get(f"/admin/conversation/{conversation_id}/media/{photo}")
    assert response.status_code in (302, 303)
    assert JPEG_PHOTO not in response.content
