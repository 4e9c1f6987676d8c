"""Automated follow-ups from the playbook's rules: schedule, cancel, send (through the outbox).

One cron run (`run_follow_ups`, times from an injectable `now`):
1. schedule: for each rule, conversations whose trigger holds (the latest quote unanswered; a stall in a stage)
   get a `scheduled` row due `after_hours` after the trigger, keyed `{rule}:{conversation}:{trigger}` (unique);
2. cancel: a scheduled follow-up is cancelled when the customer wrote after its trigger, a manager owns the chat,
   the customer opted out (STOP) or the conversation was closed;
3. send: a due follow-up, with its conversation locked and the same checks made again, is written to the outbox
   as the bot's message in the conversation's language - inside the 24-hour window as free text, outside it as
   the channel's template when the rule says so and the channel has one, otherwise skipped with the reason -
   unless the conversation already had `max_per_day` follow-ups in the last 24 hours.
A run that repeats (two workers, a retried cron) schedules and sends nothing twice: the keys are unique, a sent row
is final and the outbound row's idempotency key is the follow-up's. The outbox's gate checks owner, consent and the
window once more right before the provider call, and drops a follow-up the customer wrote after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from salesbot.agent.playbook import FollowUpRule, Playbook
from salesbot.conversations.ownership import human_owns
from salesbot.db import unit_of_work
from salesbot.followups import repository
from salesbot.kit.logging import get_logger
from salesbot.messaging.registry import Providers
from salesbot.models import Author, Conversation, ConversationStatus, Customer, FollowUp, FollowUpStatus
from salesbot.outbox import repository as outbox
from salesbot.outbox.gate import CUSTOMER_SERVICE_WINDOW, FOLLOW_UP_KEY_PREFIX
from salesbot.outbox.service import write_outbound
from salesbot.outbox.splitting import part_limit
from salesbot.resources import Resources

log = get_logger(__name__)

BATCH = 200
DAY = timedelta(hours=24)


@dataclass
class FollowUpRun:
    scheduled: int = 0
    cancelled: int = 0
    sent: int = 0
    skipped: int = 0
    # Conversations with new outbound rows: schedule their delivery after the commit.
    deliver: list[int] = field(default_factory=list)


def cancel_reason(
    conversation: Conversation, customer: Customer, *, customer_wrote_after: bool, now: datetime
) -> str | None:
    """Why a scheduled follow-up must not go out any more (None: it still may)."""
    if conversation.status is ConversationStatus.CLOSED:
        return "conversation_closed"
    if customer.opted_out_at is not None:
        return "opted_out"
    if human_owns(conversation, now):
        return "human_owner"
    if customer_wrote_after:
        return "customer_replied"
    return None


async def run_follow_ups(
    resources: Resources, playbook: Playbook, providers: Providers, *, now: datetime
) -> FollowUpRun:
    run = FollowUpRun()
    policy = playbook.follow_ups
    async with unit_of_work(resources.sessionmaker) as session:
        for rule in policy.rules:
            run.scheduled += await _schedule(session, rule, now=now)
    async with resources.sessionmaker() as session:
        pending = await repository.scheduled_ids(session, due_before=None, limit=BATCH * 5)
    for follow_up_id in pending:
        async with unit_of_work(resources.sessionmaker) as session:
            outcome = await _settle(session, resources, playbook, providers, follow_up_id, now=now)
        if outcome == "cancelled":
            run.cancelled += 1
        elif outcome == "skipped":
            run.skipped += 1
        if isinstance(outcome, int):
            run.sent += 1
            run.deliver.append(outcome)
    if run.scheduled or run.cancelled or run.sent or run.skipped:
        log.info(
            "followups.run",
            scheduled=run.scheduled,
            cancelled=run.cancelled,
            sent=run.sent,
            skipped=run.skipped,
        )
    return run


async def _schedule(session: AsyncSession, rule: FollowUpRule, *, now: datetime) -> int:
    if rule.trigger == "quote_unanswered":
        triggers = await repository.unanswered_quotes(session, rule.name, stage=rule.stage, now=now, limit=BATCH)
    else:
        assert rule.stage is not None  # the playbook validates it
        triggers = await repository.stalled(session, rule.name, stage=rule.stage, now=now, limit=BATCH)
    scheduled = 0
    for trigger in triggers:
        if await repository.schedule(session, rule.name, trigger, due_at=trigger.at + rule.after):
            scheduled += 1
    return scheduled


async def _settle(
    session: AsyncSession,
    resources: Resources,
    playbook: Playbook,
    providers: Providers,
    follow_up_id: int,
    *,
    now: datetime,
) -> str | int | None:
    """Cancel, skip or send one scheduled follow-up; an int is the conversation that got an outbound row."""
    follow_up = await repository.lock_scheduled(session, follow_up_id)
    if follow_up is None:
        return None
    # The conversation is locked only for a send: checking the others must not hold up turns.
    due = follow_up.due_at <= now
    locked = await repository.conversation_of(session, follow_up.conversation_id, lock=due)
    if locked is None:  # pragma: no cover  (the foreign key keeps the conversation)
        return None
    conversation, customer = locked
    last = await repository.last_inbound(session, conversation.id)
    wrote_after = last is not None and last.created_at > follow_up.trigger_at
    reason = cancel_reason(conversation, customer, customer_wrote_after=wrote_after, now=now)
    rule = playbook.follow_ups.rule(follow_up.rule)
    if reason is None and rule is None:
        reason = "rule_removed"
    if reason is not None:
        _close(follow_up, FollowUpStatus.CANCELLED, reason)
        log.info("followups.cancelled", follow_up=follow_up.id, conversation=conversation.id, reason=reason)
        return "cancelled"
    if not due:
        return None
    assert rule is not None
    if await repository.sent_since(session, conversation.id, now - DAY) >= playbook.follow_ups.max_per_day:
        return _skip(follow_up, "daily_limit: max_per_day follow-ups were sent in the last 24 hours")
    window_open = await _window_open(session, customer, now=now)
    as_template = False
    if not window_open:
        if rule.outside_window == "skip":
            return _skip(follow_up, "window_closed: the rule sends nothing outside the 24-hour window")
        if not providers.get(conversation.channel).has_window_template:
            return _skip(follow_up, f"window_closed: no template configured for {conversation.channel.value}")
        as_template = True
    language = conversation.language or customer.language or playbook.default_language
    text = rule.text.get(language)
    rows = await write_outbound(
        session,
        conversation,
        text=text,
        author=Author.BOT,
        key_prefix=f"{FOLLOW_UP_KEY_PREFIX}{follow_up.key}",
        # A template is one message whatever its text (shown in the admin) is.
        limit=len(text) + 1 if as_template else part_limit(resources.settings, conversation.channel),
        in_reply_to_id=last.id if last is not None else None,
    )
    if as_template:
        rows[0].content_type = "template"
    follow_up.message_id = rows[0].id
    follow_up.sent_at = now
    _close(follow_up, FollowUpStatus.SENT, "template" if as_template else None)
    log.info(
        "followups.sent",
        follow_up=follow_up.id,
        conversation=conversation.id,
        rule=follow_up.rule,
        template=as_template,
    )
    return conversation.id


async def _window_open(session: AsyncSession, customer: Customer, *, now: datetime) -> bool:
    """Free text only within 24 hours of the customer's last message (on every channel: a follow-up is unsolicited)."""
    last_at = await outbox.last_inbound_at(session, customer.id)
    return last_at is not None and now - last_at <= CUSTOMER_SERVICE_WINDOW


def _close(follow_up: FollowUp, status: FollowUpStatus, reason: str | None) -> None:
    follow_up.status = status
    follow_up.reason = reason


def _skip(follow_up: FollowUp, reason: str) -> str:
    _close(follow_up, FollowUpStatus.SKIPPED, reason)
    log.info("followups.skipped", follow_up=follow_up.id, conversation=follow_up.conversation_id, reason=reason)
    return "skipped"
