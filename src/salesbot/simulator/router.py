"""`/simulator`: the chat page and the small JSON API it (and `salesbot chat`) polls for replies."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from salesbot.dependencies import RedisDep, SessionDep, SettingsDep
from salesbot.kit.phones import normalize_phone
from salesbot.messaging.base import MediaLimits
from salesbot.messaging.console import read_replies, store_media
from salesbot.models import Author, DeliveryStatus, Direction
from salesbot.simulator import repository

PAGE = files("salesbot.simulator").joinpath("simulator.html").read_text(encoding="utf-8")
# Exactly what the console provider accepts: 3-20 digits, optionally after "+", spaces ( ) . - anywhere.
PHONE_QUERY = Query(
    max_length=60, pattern=r"^ *\+?(?:[ ().-]*[0-9]){3,20}[ ().-]*$", description="the customer's phone"
)
CURSOR_QUERY = Query(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="the last reply's cursor")
# Redis stream ids are two unsigned 64-bit numbers; a cursor beyond them has nothing after it.
MAX_STREAM_PART = 2**64 - 1

router = APIRouter(prefix="/simulator", tags=["simulator"])


class ConsoleCustomer(BaseModel):
    phone: str
    name: str | None
    last_message_at: datetime | None


class ChatMessage(BaseModel):
    direction: Direction
    author: Author
    text: str
    at: datetime
    delivery_status: DeliveryStatus | None
    provider_message_id: str | None = Field(description="for outbound messages: the console reply's message id")


class History(BaseModel):
    phone: str
    messages: list[ChatMessage]
    cursor: str | None = Field(description="poll /simulator/api/replies with after=cursor for newer replies")


class Reply(BaseModel):
    cursor: str
    message_id: str
    text: str
    sent_at: datetime


class Upload(BaseModel):
    media: str = Field(description="post it to /webhooks/console as `media` (with `media_type`)")
    media_type: str = Field(description="audio, image or document")


class Replies(BaseModel):
    replies: list[Reply]
    typing: bool = Field(description="a turn is under way: messages wait for the bot or its reply is being sent")


def _at_or_beyond_the_end(cursor: str) -> bool:
    """Nothing can follow the largest stream id (Redis refuses an exclusive range starting there) or any larger one."""
    ms, seq = (int(part) for part in cursor.split("-"))
    return ms > MAX_STREAM_PART or seq > MAX_STREAM_PART or (ms == MAX_STREAM_PART and seq == MAX_STREAM_PART)


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "phone"), "msg": str(exc), "input": raw}]
        ) from exc


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def simulator_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})


@router.get("/api/customers", summary="Console customers, most recent first")
async def customers(session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 30) -> list[ConsoleCustomer]:
    rows = await repository.console_customers(session, limit=limit)
    return [ConsoleCustomer(phone=phone, name=name, last_message_at=at) for phone, name, at in rows]


@router.get("/api/history", summary="A console customer's transcript and the cursor for new replies")
async def history(session: SessionDep, redis: RedisDep, phone: Annotated[str, PHONE_QUERY]) -> History:
    chat_id = _phone(phone)
    # The cursor is read before the transcript: a reply sent in between is in both, and the page skips replies
    # whose message id it already shows (never neither).
    retained = await read_replies(redis, chat_id)
    messages = await repository.transcript(session, chat_id, limit=200)
    return History(
        phone=chat_id,
        messages=[
            ChatMessage(
                direction=m.direction,
                author=m.author,
                text=m.text,
                at=m.sent_at or m.created_at,
                delivery_status=m.delivery_status,
                provider_message_id=m.provider_message_id,
            )
            for m in messages
        ],
        cursor=retained[-1].cursor if retained else None,
    )


@router.get("/api/replies", summary="Replies to a console customer newer than a cursor, and the typing state")
async def replies(
    session: SessionDep,
    redis: RedisDep,
    phone: Annotated[str, PHONE_QUERY],
    after: Annotated[str | None, CURSOR_QUERY] = None,
) -> Replies:
    chat_id = _phone(phone)
    found = (
        [] if after is not None and _at_or_beyond_the_end(after) else await read_replies(redis, chat_id, after=after)
    )
    return Replies(
        replies=[Reply(cursor=r.cursor, message_id=r.message_id, text=r.text, sent_at=r.sent_at) for r in found],
        typing=await repository.turn_under_way(session, chat_id),
    )


@router.post("/api/media", summary="Keep a file (a simulated voice note, photo or document) for a console message")
async def upload_media(redis: RedisDep, settings: SettingsDep, file: UploadFile) -> Upload:
    """The file stays in Redis like the console's replies; the worker fetches it as it would from a provider."""
    if not settings.console_provider_enabled:
        raise HTTPException(status_code=404, detail="Not Found")
    limits = MediaLimits(max_bytes=settings.media.max_bytes, allowed_types=tuple(settings.media.allowed_types))
    content_type = (file.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if not limits.allows(content_type):
        raise HTTPException(status_code=415, detail=f"{content_type} files are not accepted (MEDIA_ALLOWED_TYPES)")
    data = await file.read(limits.max_bytes + 1)
    if not data:
        raise HTTPException(status_code=422, detail="the file is empty")
    if len(data) > limits.max_bytes:
        raise HTTPException(status_code=413, detail="the file is larger than MEDIA_MAX_BYTES")
    family = content_type.split("/")[0]
    reference = await store_media(redis, data, content_type=content_type, filename=(file.filename or "")[:200] or None)
    return Upload(media=reference, media_type=family if family in ("audio", "image") else "document")
