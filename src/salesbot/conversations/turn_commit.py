"""Step 3 of a turn (see salesbot.conversations.turn): check what changed while the model thought, then write.

One short transaction: the conversation, its customer and the chat's waiting customer messages are locked, and
the draft is judged against them.

- The burst was consumed meanwhile (another turn of this chat committed it: the Redis lock was lost, or a
  retried job overlapped): the draft is dropped, whatever is still waiting gets a draft of its own. This check,
  on the burst's rows locked `FOR UPDATE`, is what makes two answers to one burst impossible: turns of one chat
  commit one after the other, and the later one finds the messages processed.
- The chat was closed: the draft is withdrawn and the messages go to the customer's new conversation.
- A manager's echo arrived (its takeover job has not run yet): it is applied and the turn decides again.
- A manager took the chat over, or the customer opted out meanwhile: the draft is withdrawn; the burst is
  consumed silently (its consent keywords still count). Nothing of the agent's reaches the database.
- Newer customer messages arrived: the draft is discarded and the agent answers the whole burst again (while
  the turn may regenerate).
- Otherwise the agent's changes to the conversation and customer are applied to the locked rows, the writes its
  tools kept are applied, the messages are marked processed and the reply is written to the outbox: one commit.

Every generation's LLM usage (`llm_usage` and the conversation's totals) is written by the transaction that
decides its fate, so withdrawn and discarded drafts are counted too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState

from salesbot.agent.draft import Draft
from salesbot.agent.reply import AgentReply, LLMUsage
from salesbot.alerts import service as alerts
from salesbot.conversations import consent, repository, service
from salesbot.conversations.ownership import human_owns
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models import Author, Conversation, ConversationStatus, Customer, Message
from salesbot.models._columns import utcnow
from salesbot.outbox.gate import CONSENT_KEY_PREFIX
from salesbot.outbox.service import write_outbound, write_outbound_media
from salesbot.outbox.splitting import part_limit
from salesbot.resources import Resources

log = get_logger(__name__)

# What the turn does after a commit step: stop, generate again for the burst as it is now (counts towards
# TURN_MAX_REGENERATIONS), or decide again without that counting (a manager's echo was applied).
Next = Literal["done", "regenerate", "decide_again"]

# Namespace of the per-conversation advisory lock (pg_advisory_xact_lock(namespace, id)): a turn's short
# transactions of one chat (start, commit, give-up) run one at a time.
TURN_LOCK_NAMESPACE = 0x5B7E


@dataclass
class TurnOutcome:
    conversation_id: int
    consumed: int = 0
    outbound: int = 0
    agent_runs: int = 0
    # What the turn did: replied, handoff (budget spent or attempts exhausted), silent_human_owner,
    # silent_opted_out, consent_only, empty_reply, nothing_to_do, moved (messages of a closed conversation went
    # to the customer's active one).
    result: str = "nothing_to_do"
    moved_to: int | None = None
    # The reply hands the chat to a manager (the agent asked for one, or the turn gave up).
    handoff: bool = False
    # From the burst's last customer message to this turn taking it (None: nothing was taken).
    debounce_seconds: float | None = None


@dataclass
class Plan:
    """What the turn will write, decided from the burst and the agent's draft."""

    confirmations: list[tuple[consent.Command, Message]] = field(default_factory=list)
    agent_messages: list[Message] = field(default_factory=list)
    reply: AgentReply | None = None
    silent_reason: str | None = None
    # The generation whose reply this is (its usage is written with the plan's fate).
    usage: list[LLMUsage] = field(default_factory=list)
    # The agent's database writes (None: the agent did not run).
    draft: Draft | None = None

    @property
    def drafted(self) -> bool:
        """An agent's answer that a manager's takeover or an opt-out withdraws (a handoff goes out anyway)."""
        return self.reply is not None and not self.reply.handoff


@dataclass(frozen=True)
class Burst:
    """What the generation saw: the detached conversation and customer (the agent's changes are on them) and
    the customer messages it answered."""

    conversation: Conversation
    customer: Customer
    messages: list[Message]
    was_opted_out: bool


async def advisory_lock(session: AsyncSession, conversation_id: int) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(TURN_LOCK_NAMESPACE, conversation_id % 2_147_483_647)))


async def commit(
    resources: Resources,
    burst: Burst,
    plan: Plan,
    outcome: TurnOutcome,
    *,
    may_regenerate: bool,
    pending: list[LLMUsage],
) -> Next:
    """Step 3 (see the module docstring). `pending`: the generations whose usage is not written yet (emptied once
    this step's commit wrote it)."""
    async with unit_of_work(resources.sessionmaker) as session:
        then = await _judge(session, resources, burst, plan, outcome, may_regenerate=may_regenerate)
    pending.clear()
    if then == "kept" and plan.draft is not None and plan.draft.after_commit_effects:
        await _after_commit(resources, burst.conversation.id, plan.draft)
    return "done" if then == "kept" else then


async def _judge(
    session: AsyncSession, resources: Resources, burst: Burst, plan: Plan, outcome: TurnOutcome, *, may_regenerate: bool
) -> Next | Literal["kept"]:
    conversation_id = burst.conversation.id
    await advisory_lock(session, conversation_id)
    fresh, fresh_customer = await repository.lock_conversation_and_customer(session, conversation_id)
    waiting = await repository.lock_unprocessed_inbound(session, conversation_id)
    waiting_ids = {message.id for message in waiting}
    if any(message.id not in waiting_ids for message in burst.messages):
        count_usage(session, fresh, plan.usage, "discarded")
        log.info("turn.draft_superseded", conversation=conversation_id, left=len(waiting))
        return "regenerate" if waiting and may_regenerate else "done"
    if fresh.status is ConversationStatus.CLOSED:
        count_usage(session, fresh, plan.usage, "withdrawn")
        log.info("turn.draft_withdrawn", conversation=conversation_id, reason="conversation_closed")
        await move(session, fresh, waiting, outcome)
        return "done"
    if plan.drafted and (echoes := await repository.unapplied_manager_echoes(session, conversation_id)):
        # A manager wrote from the provider's inbox meanwhile and the takeover job has not run yet (the worker
        # may be busy): apply it now and decide again with the chat's new owner.
        count_usage(session, fresh, plan.usage, "withdrawn")
        for echo_id in echoes:
            await service.apply_manager_echo(
                session, conversation_id, echo_id, hours=resources.settings.conversation.human_takeover_hours
            )
        log.info("turn.draft_withdrawn", conversation=conversation_id, reason="manager_echo")
        return "decide_again"
    withdraw = None
    if plan.drafted and human_owns(fresh, utcnow()):
        withdraw = "silent_human_owner"
    elif plan.drafted and fresh_customer.opted_out_at is not None and not burst.was_opted_out:
        withdraw = "silent_opted_out"
    if withdraw is not None:
        count_usage(session, fresh, plan.usage, "withdrawn")
        # Consent keywords of the burst still count; nothing the agent did does.
        if plan.confirmations:
            fresh_customer.opted_out_at = burst.customer.opted_out_at
        log.info("turn.draft_withdrawn", conversation=conversation_id, reason=withdraw)
        silent = Plan(confirmations=plan.confirmations, silent_reason=withdraw)
        await record(session, resources, fresh, burst.messages, silent, outcome)
        return "done"
    newer = [message for message in waiting if message.id not in {m.id for m in burst.messages}]
    if newer and may_regenerate:
        count_usage(session, fresh, plan.usage, "discarded")
        log.info("turn.draft_discarded", conversation=conversation_id, newer=len(newer))
        return "regenerate"
    if newer:
        # They stay unprocessed; the turn scheduled by their own arrival answers them next.
        log.info("turn.regeneration_limit", conversation=conversation_id, left=len(newer))
    _apply_changes(burst.conversation, fresh)
    _apply_changes(burst.customer, fresh_customer)
    if plan.draft is not None:
        await plan.draft.apply(session)
    count_usage(session, fresh, plan.usage, "sent")
    await record(session, resources, fresh, burst.messages, plan, outcome)
    return "kept"


async def _after_commit(resources: Resources, conversation_id: int, draft: Draft) -> None:
    """The kept draft's follow-up writes (memory); they never undo the committed answer."""
    try:
        async with unit_of_work(resources.sessionmaker) as session:
            for effect in draft.after_commit_effects:
                await effect(session)
    except Exception:
        log.exception("turn.after_commit_failed", conversation=conversation_id)


async def move(
    session: AsyncSession, conversation: Conversation, messages: Sequence[Message], out: TurnOutcome
) -> None:
    """The inbox attached these a moment before a manager closed the chat: they belong to a new one."""
    target = await repository.find_or_create_active_conversation(
        session, customer_id=conversation.customer_id, channel=conversation.channel
    )
    await repository.move_messages(session, [m.id for m in messages], to_conversation_id=target)
    out.result, out.moved_to = "moved", target


def _apply_changes(source: Conversation | Customer, target: Conversation | Customer) -> None:
    """Copy the columns the turn changed on a detached copy onto the locked row (other columns stay as committed)."""
    state: InstanceState[Any] = inspect(source)
    for attribute in state.mapper.column_attrs:
        if state.attrs[attribute.key].history.has_changes():
            setattr(target, attribute.key, getattr(source, attribute.key))


def count_usage(session: AsyncSession, conversation: Conversation, usages: Sequence[LLMUsage], outcome: str) -> None:
    """What the generations asked the LLMs: `llm_usage` rows and the conversation's totals (SQL-side: a manager
    may write concurrently)."""
    repository.add_llm_usage(session, conversation.id, usages, outcome)
    if not any(usage.requests for usage in usages):
        return
    conversation.tokens_in_total = Conversation.tokens_in_total + sum(u.tokens_in for u in usages)
    conversation.tokens_out_total = Conversation.tokens_out_total + sum(u.tokens_out for u in usages)
    conversation.llm_cost_total = Conversation.llm_cost_total + sum((u.cost for u in usages), Decimal(0))


async def _alert_handoff(
    session: AsyncSession, conversation: Conversation, messages: Sequence[Message], reply: AgentReply
) -> None:
    """A handoff is one event, whether or not the customer asked for a person: one alert, keyed by the burst."""
    asked = any(call.get("tool") == "request_human" for call in reply.tool_calls)
    await alerts.record_alert(
        session,
        kind=alerts.AlertKind.PERSON_REQUESTED if asked else alerts.AlertKind.HANDOFF,
        conversation_id=conversation.id,
        event_key=alerts.handoff_event_key(conversation.id, messages[-1].id),
        excerpt=" ".join(message.text for message in messages[-3:]),
    )


async def record(
    session: AsyncSession,
    resources: Resources,
    conversation: Conversation,
    messages: Sequence[Message],
    plan: Plan,
    outcome: TurnOutcome,
) -> None:
    """Consume the burst: mark it processed and write the consent confirmations and the reply to the outbox.

    The rows are written by one flush at the end (one UPDATE per changed row, the inserts batched)."""
    now = utcnow()
    customer = await session.get_one(Customer, conversation.customer_id)
    first_at: datetime = min(m.created_at for m in messages)
    last_at: datetime = max(m.created_at for m in messages)
    if customer.first_inbound_at is None or customer.first_inbound_at > first_at:
        customer.first_inbound_at = first_at
    if customer.last_inbound_at is None or customer.last_inbound_at < last_at:
        customer.last_inbound_at = last_at
    limit = part_limit(resources.settings, conversation.channel)
    written: list[Message] = []
    for command, message in plan.confirmations:
        written += await write_outbound(
            session,
            conversation,
            text=consent.confirmation(command, message.text),
            author=Author.SYSTEM,
            key_prefix=f"{CONSENT_KEY_PREFIX}{conversation.id}:{message.id}",
            limit=limit,
            in_reply_to_id=message.id,
            flush=False,
        )
        log.info("turn.consent", conversation=conversation.id, command=command.value)
    reply = plan.reply
    if reply is not None and reply.text.strip():
        key_prefix = f"reply:{conversation.id}:{messages[-1].id}"
        parts = await write_outbound(
            session,
            conversation,
            # A handoff reply goes out although a human owns the chat now: system messages pass that gate.
            text=reply.text,
            author=Author.SYSTEM if reply.handoff else Author.BOT,
            key_prefix=key_prefix,
            limit=limit,
            in_reply_to_id=messages[-1].id,
            flush=False,
        )
        if reply.media and not reply.handoff:
            # Photos and the quote's PDF are further parts of the reply: gated, paced and withdrawn like its text.
            parts += await write_outbound_media(
                session,
                conversation,
                reply.media,
                author=Author.BOT,
                key_prefix=key_prefix,
                first_index=len(parts),
                in_reply_to_id=messages[-1].id,
                flush=False,
            )
        if reply.handoff:
            await _alert_handoff(session, conversation, messages, reply)
        head = parts[0]
        head.model, head.fallback_used = reply.model, reply.fallback_used
        head.tokens_in, head.tokens_out, head.cost = reply.tokens_in, reply.tokens_out, reply.cost
        head.latency_ms, head.tool_calls = reply.latency_ms, reply.tool_calls
        written += parts
        conversation.turn_count = Conversation.turn_count + 1
        outcome.result = "replied"
        outcome.handoff = reply.handoff
    elif reply is not None:
        outcome.result = "empty_reply"
        log.warning("turn.empty_reply", conversation=conversation.id, model=reply.model)
    else:
        outcome.result = plan.silent_reason or "consent_only"
    conversation.message_count = Conversation.message_count + len(messages) + len(written)
    conversation.last_message_at = now
    await session.flush()
    await repository.mark_processed(session, [m.id for m in messages], now=now)
    outcome.consumed = len(messages)
    outcome.outbound = len(written)
    log.info(
        "turn.committed",
        conversation=conversation.id,
        consumed=outcome.consumed,
        outbound=outcome.outbound,
        result=outcome.result,
    )
