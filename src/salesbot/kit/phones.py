"""Phone numbers as shown to people: the provider's chat address to a phone, and a masked form for lists."""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D+")


def digits_only(value: str) -> str:
    """The ASCII digits of `value` (other Unicode digits are not phone digits in a chat address)."""
    return "".join(ch for ch in _NON_DIGITS.sub("", value) if "0" <= ch <= "9")


def phone_from_chat_id(chat_id: str) -> str:
    """`whatsapp:+14155238886` (Twilio), `79011234567` (Wazzup) or `+1 555 0100` (console) -> `+14155238886`.

    Returns the chat id unchanged when it holds no digits (a channel without phone numbers).
    """
    number = digits_only(chat_id)
    return f"+{number}" if number else chat_id


def mask_phone(chat_id: str) -> str:
    """Enough of the number to tell customers apart in a list, not enough to dial: `+79•••••••67`."""
    number = digits_only(chat_id)
    if len(number) <= 4:
        return "•" * len(number) if number else ""
    return f"+{number[:2]}{'•' * (len(number) - 4)}{number[-2:]}"
