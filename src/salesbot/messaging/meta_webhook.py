"""Meta webhook bodies -> events: `{"object": "whatsapp_business_account", "entry": [{"changes": [...]}]}`.

- field `messages`: `value.messages[]` are the customer's (every type Meta sends, rendered as readable text with
  the media kept as Graph API references), `value.statuses[]` the delivery of ours, `value.errors[]` Meta's
  webhook-level errors (logged);
- field `smb_message_echoes`: `value.message_echoes[]`, messages the business sent from the WhatsApp Business
  app (coexistence): a manager's reply;
- other fields (account, template and quality updates, user preferences) need nothing from the bot.

Changes for another phone number of the same app are skipped: the bot can only answer from its own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import (
    EchoMessage,
    InboundEvent,
    InboundMessage,
    MalformedWebhookError,
    Media,
    StatusUpdate,
    clean_text,
    valid_id,
)
from salesbot.models import Channel, DeliveryStatus

log = get_logger(__name__)

OBJECT = "whatsapp_business_account"
STATUS_MAP = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    # A voice message was played: at least read.
    "played": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
# Not something the customer said: a deleted or edited message, a number change, a security notice.
SKIPPED_TYPES = frozenset({"revoke", "edit", "system", "ephemeral", "request_welcome"})
MAX_CONTENT_TYPE = 32


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    """A string or number field as clean text; anything else is empty."""
    if isinstance(value, str):
        return clean_text(value).strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _join(*parts: str, sep: str = ", ") -> str:
    return sep.join(part for part in parts if part)


def _location(body: dict[str, Any]) -> str:
    where = _join(_str(body.get("latitude")), _str(body.get("longitude")))
    place = _join(_str(body.get("name")), _str(body.get("address")))
    return _join(place, f"({where})" if where else "", _str(body.get("url")))


def _contacts(items: list[Any]) -> str:
    cards = []
    for card in map(_dict, items):
        name = _dict(card.get("name"))
        phones = [_str(_dict(phone).get("phone")) for phone in _list(card.get("phones"))]
        emails = [_str(_dict(email).get("email")) for email in _list(card.get("emails"))]
        label = _str(name.get("formatted_name")) or _join(_str(name.get("first_name")), _str(name.get("last_name")))
        cards.append(_join(label, *phones, *emails, sep=" "))
    return "; ".join(card for card in cards if card)


def _order(body: dict[str, Any]) -> str:
    lines = [
        _join(
            f"{_str(item.get('quantity'))} x {_str(item.get('product_retailer_id'))}",
            _join(_str(item.get("item_price")), _str(item.get("currency")), sep=" "),
            sep=" @ ",
        )
        for item in map(_dict, _list(body.get("product_items")))
    ]
    return _join(_str(body.get("text")), "; ".join(lines), sep="\n")


def _interactive(body: dict[str, Any]) -> str:
    kind = _str(body.get("type"))
    reply = _dict(body.get(kind))
    # The customer tapped a button or picked a list row: what they saw is the title.
    return _str(reply.get("title")) or _str(reply.get("body"))


def content(item: dict[str, Any], graph: str) -> tuple[str, str, tuple[Media, ...]] | None:
    """(content type, readable text, media) of one message or echo; None for what is not a message to answer."""
    kind = _str(item.get("type")) or "unknown"
    if kind in SKIPPED_TYPES:
        return None
    body = _dict(item.get(kind))
    media: tuple[Media, ...] = ()
    if kind == "text":
        text = _str(body.get("body"))
    elif kind in MEDIA_TYPES:
        text = _str(body.get("caption")) or (_str(body.get("filename")) if kind == "document" else "")
        media_id = _str(body.get("id"))
        # The media id resolves to a short-lived download URL at the Graph API (bearer token).
        url = _str(body.get("url")) or (f"{graph}/{media_id}" if media_id else "")
        if url:
            media = (Media(url=url, content_type=_str(body.get("mime_type")) or None),)
    elif kind == "location":
        text = _location(body)
    elif kind == "contacts":
        text = _contacts(_list(item.get("contacts")))
    elif kind == "interactive":
        text = _interactive(body)
    elif kind == "button":
        text = _str(body.get("text")) or _str(body.get("payload"))
    elif kind == "reaction":
        text = _str(body.get("emoji"))
        if not text:
            # The customer removed a reaction: nothing to answer.
            return None
    elif kind == "order":
        text = _order(body)
    else:
        # `unsupported` and types newer than this adapter: stored with their type so a manager can look.
        text = _str(body.get("body")) or _str(body.get("text"))
    for error in map(_dict, _list(item.get("errors"))):
        log.info("meta.message_error", type=kind, code=_str(error.get("code")), title=_str(error.get("title")))
    return kind[:MAX_CONTENT_TYPE], text, media


def _names(value: dict[str, Any]) -> dict[str, str]:
    names = {}
    for contact in map(_dict, _list(value.get("contacts"))):
        name = _str(_dict(contact.get("profile")).get("name"))[:200]
        for key in ("wa_id", "user_id"):
            if name and _str(contact.get(key)):
                names[_str(contact.get(key))] = name
    return names


def _message(item: dict[str, Any], names: dict[str, str], graph: str) -> InboundMessage | None:
    message_id = _str(item.get("id"))
    chat_id = _str(item.get("from")) or _str(item.get("from_user_id"))
    if not valid_id(message_id) or not valid_id(chat_id):
        log.warning("meta.item_skipped", reason="id or from missing or invalid")
        return None
    parsed = content(item, graph)
    if parsed is None:
        log.info("meta.message_ignored", type=_str(item.get("type")), chat=short_hash(chat_id))
        return None
    content_type, text, media = parsed
    return InboundMessage(
        channel=Channel.META,
        provider_message_id=message_id,
        chat_id=chat_id,
        text=text,
        content_type=content_type,
        media=media,
        contact_name=names.get(chat_id) or names.get(_str(item.get("from_user_id"))) or None,
        sent_at=_time(item.get("timestamp")),
    )


def _echo(item: dict[str, Any], graph: str) -> EchoMessage | None:
    message_id = _str(item.get("id"))
    chat_id = _str(item.get("to")) or _str(item.get("to_user_id"))
    if not valid_id(message_id) or not valid_id(chat_id):
        log.warning("meta.item_skipped", reason="echo id or to missing or invalid")
        return None
    parsed = content(item, graph)
    if parsed is None:
        return None
    content_type, text, media = parsed
    return EchoMessage(
        channel=Channel.META,
        provider_message_id=message_id,
        chat_id=chat_id,
        text=text,
        content_type=content_type,
        media=media,
        sent_at=_time(item.get("timestamp")),
    )


def _status(item: dict[str, Any]) -> StatusUpdate | None:
    message_id = _str(item.get("id"))
    status = STATUS_MAP.get(_str(item.get("status")))
    if status is None or not valid_id(message_id):
        # `deleted`, `warning` and unknown states change no delivery.
        return None
    error = _dict(next(iter(_list(item.get("errors"))), None))
    code = _str(error.get("code")) or None
    details = _str(_dict(error.get("error_data")).get("details"))
    description = _join(_str(error.get("title")) or _str(error.get("message")), details, sep=": ") or None
    if status is DeliveryStatus.FAILED and code is None:
        code = "failed"
    key = _str(item.get("biz_opaque_callback_data")) or None
    return StatusUpdate(
        channel=Channel.META,
        provider_message_id=message_id,
        status=status,
        error_code=code,
        error_description=description,
        idempotency_key=key if key is not None and valid_id(key) else None,
    )


def _change(change: dict[str, Any], *, phone_number_id: str, graph: str) -> list[InboundEvent]:
    field = _str(change.get("field"))
    value = _dict(change.get("value"))
    if field not in ("messages", "smb_message_echoes"):
        log.info("meta.field_ignored", field=field[:64])
        return []
    number = _str(_dict(value.get("metadata")).get("phone_number_id"))
    if phone_number_id and number and number != phone_number_id:
        log.info("meta.foreign_number_ignored", field=field)
        return []
    events: list[InboundEvent] = []
    if field == "smb_message_echoes":
        events.extend(echo for item in map(_dict, _list(value.get("message_echoes"))) if (echo := _echo(item, graph)))
        return events
    names = _names(value)
    events.extend(msg for item in map(_dict, _list(value.get("messages"))) if (msg := _message(item, names, graph)))
    events.extend(status for item in map(_dict, _list(value.get("statuses"))) if (status := _status(item)))
    for error in map(_dict, _list(value.get("errors"))):
        log.warning("meta.webhook_error", code=_str(error.get("code")), title=_str(error.get("title")))
    return events


def parse(body: bytes, *, phone_number_id: str, graph: str) -> list[InboundEvent]:
    """Events of one verified webhook body; `graph` is the Graph API base that media ids resolve against."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedWebhookError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("entry", []), list):
        raise MalformedWebhookError("body must be an object with an `entry` array")
    if payload.get("object") != OBJECT:
        log.info("meta.object_ignored", object=_str(payload.get("object"))[:64])
        return []
    events: list[InboundEvent] = []
    for entry in map(_dict, payload.get("entry", [])):
        for change in map(_dict, _list(entry.get("changes"))):
            events.extend(_change(change, phone_number_id=phone_number_id, graph=graph))
    return events
