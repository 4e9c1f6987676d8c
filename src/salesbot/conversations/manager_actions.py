"""What a manager does to a conversation, the same from the admin and the REST API, each action audited.

Every function works in the caller's unit of work and only flushes: the action and its audit event commit
together. Whoever commits a manager message calls `salesbot.outbox.service.schedule_delivery` afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.accounts import repository as accounts
from salesbot.agent.stages import TRANSITIONS
from salesbot.audit import repository as audit
from salesbot.audit.actor import Actor
from salesbot.conversations import service
from salesbot.kit.errors import AppError, ConflictError, NotFoundError
from salesbot.kit.text import has_control_characters
from salesbot.models import Conversation, ConversationStatus, Customer, Message, Owner, SalesStage, User
from salesbot.models._columns import utcnow
from salesbot.reporting.repository import other_active_conversation
from salesbot.settings import Settings

# One limit for a manager's message, wherever it is written (the outbox splits it to the channel's limit).
MAX_MANAGER_TEXT = service.MAX_MANAGER_TEXT_LENGTH


class FieldError(AppError):
    """Input that is well-formed but not acceptable in the current state (a 422 naming the field)."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def manager_text(text: object) -> str:
    """The message as it will be sent, or `FieldError` saying what is wrong with it."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_MANAGER_TEXT or has_control_characters(text):
        raise FieldError("text", f"Write a message of 1 to {MAX_MANAGER_TEXT} characters.")
    return text


async def _assign_to_actor(session: AsyncSession, conversation: Conversation, actor: Actor) -> None:
    """A manager who takes a chat over or answers in it becomes its assignee (a system actor changes nothing)."""
    if actor.user_id is not None and conversation.assignee_id != actor.user_id:
        user = await session.get(User, actor.user_id)
        conversation.assignee = user


async def take_over(session: AsyncSession, settings: Settings, conversation_id: int, actor: Actor) -> Conversation:
    hours = settings.conversation.human_takeover_hours
    conversation = await service.take_over(session, conversation_id, hours=hours)
    await _assign_to_actor(session, conversation, actor)
    conversation.updated_at = utcnow()
    await audit.record(session, actor, "take_over", conversation_id=conversation_id, details={"hours": hours})
    return conversation


async def hand_back(session: AsyncSession, conversation_id: int, actor: Actor) -> Conversation:
    conversation = await service.hand_back(session, conversation_id)
    conversation.updated_at = utcnow()
    await audit.record(session, actor, "hand_back", conversation_id=conversation_id)
    return conversation


async def close(session: AsyncSession, conversation_id: int, actor: Actor) -> Conversation:
    conversation = await service.close_conversation(session, conversation_id)
    conversation.updated_at = utcnow()
    await audit.record(session, actor, "close", conversation_id=conversation_id)
    return conversation


async def reply(
    session: AsyncSession, settings: Settings, conversation_id: int, text: object, actor: Actor
) -> list[Message]:
    """Queue the manager's message (the manager becomes the owner and the assignee); deliver after the commit."""
    rows = await service.send_manager_message(session, conversation_id, manager_text(text), settings=settings)
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    await _assign_to_actor(session, conversation, actor)
    await audit.record(session, actor, "reply", conversation_id=conversation_id, details={"parts": len(rows)})
    return rows


_UNSET: Any = object()


@dataclass
class Changes:
    """Fields to change on a conversation; only those given (not `_UNSET`) are touched."""

    status: ConversationStatus | None = _UNSET
    stage: SalesStage | None = _UNSET
    owner: Owner | None = _UNSET
    customer_name: str | None = _UNSET
    # A username, or None to unassign.
    assignee: str | None = _UNSET
    given: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.given = {name for name in ("status", "stage", "owner", "customer_name", "assignee") if self._has(name)}

    def _has(self, name: str) -> bool:
        return getattr(self, name) is not _UNSET


async def _conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    return conversation


async def update(
    session: AsyncSession, settings: Settings, conversation_id: int, changes: Changes, actor: Actor
) -> Conversation:
    """Apply a manager's changes; every field is validated before anything changes, each change is audited."""
    conversation = await _conversation(session, conversation_id)
    customer = await session.get(Customer, conversation.customer_id)
    assert customer is not None

    stage = changes.stage if "stage" in changes.given else None
    if stage is not None and stage is not conversation.sales_stage:
        allowed = TRANSITIONS[conversation.sales_stage]
        if stage not in allowed:
            options = ", ".join(sorted(s.value for s in allowed)) or "none (final stage)"
            raise FieldError(
                "stage",
                f"cannot move from '{conversation.sales_stage.value}' to '{stage.value}'; "
                f"allowed next stages: {options}",
            )
    assignee: User | None = None
    if "assignee" in changes.given and changes.assignee is not None:
        assignee = await accounts.by_username(session, changes.assignee)
        if assignee is None or not assignee.active:
            raise FieldError("assignee", f"no active user named {changes.assignee!r}")
    status = changes.status if "status" in changes.given else None
    reopen = status is ConversationStatus.ACTIVE and conversation.status is ConversationStatus.CLOSED
    if reopen and await other_active_conversation(session, customer.id, conversation.id) is not None:
        raise ConflictError("the customer already has another active conversation; close it first")

    if (
        "customer_name" in changes.given
        and changes.customer_name is not None
        and changes.customer_name != customer.name
    ):
        customer.name = changes.customer_name
        await audit.record(session, actor, "rename_customer", conversation_id=conversation_id)
    if stage is not None and stage is not conversation.sales_stage:
        before = conversation.sales_stage
        conversation.sales_stage = stage
        await audit.record(
            session, actor, "change_stage", conversation_id=conversation_id, details={"from": before, "to": stage}
        )
    if "assignee" in changes.given and (assignee.id if assignee else None) != conversation.assignee_id:
        conversation.assignee = assignee
        await audit.record(
            session,
            actor,
            "assign",
            conversation_id=conversation_id,
            details={"assignee": assignee.username if assignee else None},
        )
    owner = changes.owner if "owner" in changes.given else None
    if owner is Owner.HUMAN:
        await take_over(session, settings, conversation_id, actor)
    elif owner is Owner.BOT and conversation.owner is not Owner.BOT:
        await hand_back(session, conversation_id, actor)
    if status is ConversationStatus.CLOSED and conversation.status is not ConversationStatus.CLOSED:
        await close(session, conversation_id, actor)
    elif reopen:
        conversation.status = ConversationStatus.ACTIVE
        await audit.record(session, actor, "reopen", conversation_id=conversation_id)
    # Any change counts as activity for `updated_since` filters (a renamed customer too).
    conversation.updated_at = utcnow()
    await session.flush()
    return conversation
