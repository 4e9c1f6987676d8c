"""Who may write in a conversation right now: the bot, or a human manager until the takeover ends."""

from __future__ import annotations

from datetime import datetime

from salesbot.models import Conversation, Owner


def human_owns(conversation: Conversation, now: datetime) -> bool:
    """A manager owns the chat (no expiry set means until handed back explicitly)."""
    if conversation.owner is not Owner.HUMAN:
        return False
    return conversation.owner_until is None or conversation.owner_until > now


def takeover_expired(conversation: Conversation, now: datetime) -> bool:
    return (
        conversation.owner is Owner.HUMAN and conversation.owner_until is not None and conversation.owner_until <= now
    )
