"""One conversation turn: consume the customer's unprocessed messages and write the answer into the outbox.

A turn has three steps, and a manager never waits for the second (the LLM):

1. Start (a short, committed transaction): apply manager echoes whose takeover job was lost, release an expired
   takeover, and count an attempt on every waiting customer message. A burst that was attempted
   `MAX_TURN_ATTEMPTS` times already (its turns were killed with their worker) is not generated again: the
   customer gets the playbook's handoff text and the chat goes to a manager. A turn that fails with an error is
   retried by its job (`tasks.TURN_ATTEMPTS`), which hands the chat over itself after the last try.
2. Generate: the burst's inbound rows are locked (`FOR UPDATE`: only turns and the sweep touch them) and the
   conversation and customer are read and *detached*, so what the agent changes on them stays in memory and no
   row a manager's action needs is locked while the model thinks. The agent runs inside a SAVEPOINT (quotes it
   creates are inserted there) within the turn's budget (`TURN_BUDGET_SECONDS`): LLM requests end at the
   deadline and the offline responder answers. A generation still running shortly before arq's job timeout (a
   hung tool or database) is cancelled, its transaction abandoned, and the customer gets the handoff text.
3. Commit: conversation and customer are read again, locked. A chat taken over or closed meanwhile, or a
   customer who opted out meanwhile, withdraws the draft (savepoint rolled back, nothing reaches the outbox);
   newer customer messages discard it and the agent runs again with the whole burst (a bounded number of
   times, within the budget). Otherwise the agent's changes are applied to the fresh rows, the messages are
   marked processed and the reply parts are written as pending outbound rows, all in one commit.

What every generation asked the LLMs is recorded outside the savepoint (`llm_usage`), so discarded, withdrawn
and timed-out drafts are counted too. A transaction-scoped advisory lock per conversation makes two turns of one
chat impossible even if the Redis lock were lost. A crash before the commit leaves the messages unprocessed and
the retried job does the whole turn again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState

from salesbot.agent.language import conversation_language
from salesbot.agent.playbook import load_playbook
from salesbot.agent.reply import AgentReply, LLMUsage, ReplyGenerator, ReplyRequest
from salesbot.alerts import service as alerts
from salesbot.conversations import consent, repository, service
from salesbot.conversations.ownership import human_owns, takeover_expired
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models import Author, Conversation, ConversationStatus, Customer, Message, Owner
from salesbot.models._columns import utcnow
from salesbot.outbox.gate import CONSENT_KEY_PREFIX
from salesbot.outbox.service import write_outbound, write_outbound_media
from salesbot.outbox.splitting import part_limit
from salesbot.resources import Resources
from salesbot.settings import Settings

log = get_logger(__name__)

# Namespace of the per-conversation advisory lock (pg_advisory_xact_lock(namespace, id)).
TURN_LOCK_NAMESPACE = 0x5B7E
# Turns started on one customer message before it gets the handoff text instead of another generation. Only a
# worker that dies mid-turn leaves a start unanswered (errors end in the job's own retries), and a worker holds up
# to WORKER_MAX_JOBS turns: one crash costs every chat it held a start. The budget is what catches a message that
# kills its worker each time (it takes that many crashes), while an unlucky chat whose worker is killed twice
# during its turn, which a restart loop or two quick deploys make likely, still gets an answer.
MAX_TURN_ATTEMPTS = 4
# The part of the budget kept for the offline responder and the commit after the LLMs' deadline.
BUDGET_RESERVE_FRACTION = 0.15
MAX_BUDGET_RESERVE_SECONDS = 4.0
# A generation still running this long before arq's job timeout is cancelled and becomes a handoff (arq would
# cancel it a moment later, silently); the margin is for writing the handoff.
HARD_STOP_MARGIN_SECONDS = 3.0


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
class _Plan:
    """What the turn will write, decided from the burst and the agent's draft."""

    confirmations: list[tuple[consent.Command, Message]] = field(default_factory=list)
    agent_messages: list[Message] = field(default_factory=list)
    reply: AgentReply | None = None
    silent_reason: str | None = None
    usage: list[LLMUsage] = field(default_factory=list)


@dataclass(frozen=True)
class _Budget:
    llm_deadline: float  # loop time: LLM requests end here (then the offline responder answers)
    hard_deadline: float  # loop time: a generation still running is cancelled here and the chat handed over

    @classmethod
    def start(cls, settings: Settings) -> _Budget:
        now = asyncio.get_running_loop().time()
        seconds = settings.turn_budget_seconds
        reserve = min(seconds * BUDGET_RESERVE_FRACTION, MAX_BUDGET_RESERVE_SECONDS)
        hard = max(seconds, settings.worker_job_timeout_seconds - HARD_STOP_MARGIN_SECONDS)
        return cls(llm_deadline=now + seconds - reserve, hard_deadline=now + hard)

    def spent(self) -> bool:
        return asyncio.get_running_loop().time() >= self.llm_deadline


async def run_turn(resources: Resources, generator: ReplyGenerator, conversation_id: int) -> TurnOutcome:
    """Consume the conversation's pending customer messages; commits. Delivery is scheduled by the caller."""
    budget = _Budget.start(resources.settings)
    outcome = TurnOutcome(conversation_id)
    attempts = await _start(resources, conversation_id, outcome)
    if attempts is None:
        return outcome
    if attempts > MAX_TURN_ATTEMPTS:
        log.warning("turn.attempts_exhausted", conversation=conversation_id, attempts=attempts)
        await give_up(resources, conversation_id, outcome, reason="the assistant could not answer; please take over")
        return outcome
    usage: list[LLMUsage] = []
    try:
        # Cancelling mid-query leaves the connection unusable: the transaction is abandoned as a whole and the
        # handoff written in a new one.
        async with asyncio.timeout_at(budget.hard_deadline), unit_of_work(resources.sessionmaker) as session:
            await _advisory_lock(session, conversation_id)
            messages = await repository.lock_unprocessed_inbound(session, conversation_id)
            state = await repository.read_detached(session, conversation_id)
            if not messages or state is None:
                return outcome
            conversation, customer = state
            plan, fresh, messages = await _decide(
                session, resources, generator, budget, conversation, customer, messages, usage
            )
            outcome.agent_runs = len(plan.usage)
            if fresh.status is ConversationStatus.CLOSED:
                await _move(session, fresh, messages, outcome)
                return outcome
            await _record(session, resources, fresh, messages, plan, outcome)
    except TimeoutError:
        requests = sum(item.requests for item in usage)
        log.warning("turn.budget_exhausted", conversation=conversation_id, generations=len(usage), requests=requests)
        outcome.agent_runs = len(usage)
        await give_up(
            resources, conversation_id, outcome, reason="the assistant ran out of time; please take over", usage=usage
        )
    return outcome


async def _advisory_lock(session: AsyncSession, conversation_id: int) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(TURN_LOCK_NAMESPACE, conversation_id % 2_147_483_647)))


async def _start(resources: Resources, conversation_id: int, outcome: TurnOutcome) -> int | None:
    """Step 1; returns the attempts of the burst's most tried message (None: nothing for the agent to do)."""
    async with unit_of_work(resources.sessionmaker) as session:
        await _advisory_lock(session, conversation_id)
        conversation = await repository.get_conversation(session, conversation_id)
        if conversation is None:
            return None
        messages = await repository.lock_unprocessed_inbound(session, conversation_id)
        if not messages:
            return None
        if conversation.status is ConversationStatus.CLOSED:
            await _move(session, conversation, messages, outcome)
            return None
        # A manager's echo whose takeover job never ran (its Redis queue was lost) still silences the bot.
        for echo_id in await repository.unapplied_manager_echoes(session, conversation_id):
            await service.apply_manager_echo(
                session, conversation_id, echo_id, hours=resources.settings.conversation.human_takeover_hours
            )
        if takeover_expired(conversation, utcnow()):
            conversation.owner, conversation.owner_until = Owner.BOT, None
        for message in messages:
            message.turn_attempts += 1
        outcome.debounce_seconds = (utcnow() - max(m.created_at for m in messages)).total_seconds()
        return max(message.turn_attempts for message in messages)


async def _move(
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


async def _decide(
    session: AsyncSession,
    resources: Resources,
    generator: ReplyGenerator,
    budget: _Budget,
    conversation: Conversation,
    customer: Customer,
    messages: list[Message],
    usage: list[LLMUsage],
) -> tuple[_Plan, Conversation, list[Message]]:
    """Steps 2 and 3: generate, then check what changed meanwhile; regenerate, withdraw or keep the draft.

    Returns the plan (with the LLM usage of every generation, recorded here and appended to `usage` as it
    happens), the locked conversation row (the turn's changes applied) and the messages the plan answers."""
    max_regenerations = resources.settings.conversation.turn_max_regenerations
    attempt = 0
    while True:
        was_opted_out = customer.opted_out_at is not None
        savepoint = await session.begin_nested()
        plan = _consent(resources, customer, messages)
        if plan.silent_reason is None and human_owns(conversation, utcnow()):
            plan.silent_reason = "silent_human_owner"
        if plan.silent_reason is None:
            await _generate(session, resources, generator, budget, conversation, customer, plan, usage)
        draft = plan.reply is not None and not plan.reply.handoff
        echoes = await repository.unapplied_manager_echoes(session, conversation.id) if draft else []
        if echoes:
            # A manager wrote from the provider's inbox meanwhile and the takeover job has not run yet (the worker
            # may be busy): apply it now, outside the draft, and decide again with the chat's new owner.
            await savepoint.rollback()
            repository.add_llm_usage(session, conversation.id, plan.usage, "withdrawn")
            for echo_id in echoes:
                await service.apply_manager_echo(
                    session, conversation.id, echo_id, hours=resources.settings.conversation.human_takeover_hours
                )
            state = await repository.read_detached(session, conversation.id)
            assert state is not None
            conversation, customer = state
            log.info("turn.draft_withdrawn", conversation=conversation.id, reason="manager_echo")
            continue
        fresh, fresh_customer = await repository.lock_conversation_and_customer(session, conversation.id)
        withdraw = None
        if fresh.status is ConversationStatus.CLOSED:
            withdraw = "conversation_closed"
        elif draft and human_owns(fresh, utcnow()):
            withdraw = "silent_human_owner"
        elif draft and fresh_customer.opted_out_at is not None and not was_opted_out:
            withdraw = "silent_opted_out"
        if withdraw is not None:
            await savepoint.rollback()
            repository.add_llm_usage(session, conversation.id, plan.usage, "withdrawn")
            fresh, fresh_customer = await repository.lock_conversation_and_customer(session, conversation.id)
            # Consent keywords of the burst still count; nothing the agent did does.
            if plan.confirmations:
                fresh_customer.opted_out_at = customer.opted_out_at
            log.info("turn.draft_withdrawn", conversation=conversation.id, reason=withdraw)
            return _Plan(confirmations=plan.confirmations, silent_reason=withdraw, usage=list(usage)), fresh, messages
        newer = await repository.lock_unprocessed_inbound(session, conversation.id, after_id=messages[-1].id)
        # No regeneration once the budget or the turn's LLM requests are spent: the newer messages get a turn of
        # their own (with a budget of its own) instead of a fourth and fifth draft.
        spent = budget.spent() or sum(u.requests for u in usage) >= resources.settings.llm.max_requests_per_turn
        if not newer or attempt >= max_regenerations or spent:
            _apply_changes(conversation, fresh)
            _apply_changes(customer, fresh_customer)
            await savepoint.commit()
            repository.add_llm_usage(session, conversation.id, plan.usage, "sent")
            if newer:
                # They stay unprocessed; the turn scheduled by their own arrival answers them next.
                log.info("turn.regeneration_limit", conversation=conversation.id, left=len(newer))
            plan.usage = list(usage)
            return plan, fresh, messages
        await savepoint.rollback()
        repository.add_llm_usage(session, conversation.id, plan.usage, "discarded")
        state = await repository.read_detached(session, conversation.id)
        assert state is not None
        conversation, customer = state
        messages = messages + newer
        attempt += 1
        log.info("turn.draft_discarded", conversation=conversation.id, newer=len(newer), attempt=attempt)


def _consent(resources: Resources, customer: Customer, messages: Sequence[Message]) -> _Plan:
    """Opt-out and opt-in keywords of the burst (applied to the customer copy) and the messages the agent answers."""
    settings = resources.settings.conversation
    plan = _Plan()
    replayed = consent.replay(messages, settings, opted_out_at=customer.opted_out_at)
    if replayed.changed:
        customer.opted_out_at = replayed.opted_out_at
    plan.confirmations, plan.agent_messages = replayed.confirmations, replayed.agent_messages
    if customer.opted_out_at is not None:
        plan.silent_reason = "silent_opted_out"
    elif not plan.agent_messages:
        plan.silent_reason = "consent_only"
    return plan


async def _generate(
    session: AsyncSession,
    resources: Resources,
    generator: ReplyGenerator,
    budget: _Budget,
    conversation: Conversation,
    customer: Customer,
    plan: _Plan,
    usage: list[LLMUsage],
) -> None:
    """Run the agent for the plan's messages; its LLM requests end at the budget's deadline."""
    started = time.perf_counter()
    generation = LLMUsage()
    plan.usage = [generation]
    usage.append(generation)
    plan.reply = await generator(
        ReplyRequest(
            session=session,
            resources=resources,
            conversation=conversation,
            customer=customer,
            new_messages=tuple(plan.agent_messages),
            deadline=budget.llm_deadline,
            usage=generation,
        )
    )
    log.info(
        "turn.generated",
        conversation=conversation.id,
        messages=len(plan.agent_messages),
        model=plan.reply.model,
        handoff=plan.reply.handoff,
        requests=generation.requests,
        ms=round((time.perf_counter() - started) * 1000),
    )


def _handoff(
    resources: Resources, conversation: Conversation, customer: Customer, messages: Sequence[Message]
) -> AgentReply:
    """The playbook's handoff text in the customer's language; the chat goes to a manager (on the detached copy,
    applied at the commit like any change the agent makes)."""
    settings = resources.settings
    playbook = load_playbook(settings.conversation.playbook_path or None)
    language = conversation_language(
        [message.text for message in messages], current=conversation.language, default=playbook.default_language
    )
    conversation.owner = Owner.HUMAN
    conversation.owner_until = utcnow() + timedelta(hours=settings.conversation.human_takeover_hours)
    conversation.needs_attention = True
    return AgentReply(text=playbook.messages.handoff.get(language), model="none", handoff=True)


async def give_up(
    resources: Resources,
    conversation_id: int,
    outcome: TurnOutcome,
    *,
    reason: str,
    usage: Sequence[LLMUsage] = (),
) -> None:
    """The burst cannot be answered by the agent: tell the customer a manager takes over, and flag the chat.

    Never silent: the handoff text goes out unless the customer opted out or a manager already owns the chat.
    `usage`: what the abandoned generations asked the LLMs (recorded as timed out)."""
    async with unit_of_work(resources.sessionmaker) as session:
        await _advisory_lock(session, conversation_id)
        repository.add_llm_usage(session, conversation_id, usage, "timed_out")
        messages = await repository.lock_unprocessed_inbound(session, conversation_id)
        if not messages:
            return
        conversation, customer = await repository.lock_conversation_and_customer(session, conversation_id)
        plan = _Plan(silent_reason="silent_opted_out" if customer.opted_out_at is not None else None, usage=list(usage))
        if human_owns(conversation, utcnow()):
            plan.silent_reason = "silent_human_owner"
        conversation.needs_attention = True
        if plan.silent_reason is None:
            plan.reply = _handoff(resources, conversation, customer, messages)
            conversation.facts = {**(conversation.facts or {}), "handoff_reason": reason}
        await _record(session, resources, conversation, messages, plan, outcome)
        if plan.reply is not None:
            outcome.result = "handoff"


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


async def _record(
    session: AsyncSession,
    resources: Resources,
    conversation: Conversation,
    messages: Sequence[Message],
    plan: _Plan,
    outcome: TurnOutcome,
) -> None:
    now = utcnow()
    customer = await session.get_one(Customer, conversation.customer_id)
    await repository.mark_processed(session, [m.id for m in messages], now=now)
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
        )
        log.info("turn.consent", conversation=conversation.id, command=command.value)
    # Every generation's LLM usage counts, the discarded drafts' too (SQL-side: a manager may write concurrently).
    conversation.tokens_in_total = Conversation.tokens_in_total + sum(u.tokens_in for u in plan.usage)
    conversation.tokens_out_total = Conversation.tokens_out_total + sum(u.tokens_out for u in plan.usage)
    conversation.llm_cost_total = Conversation.llm_cost_total + sum((u.cost for u in plan.usage), Decimal(0))
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
    outcome.consumed = len(messages)
    outcome.outbound = len(written)
    log.info(
        "turn.committed",
        conversation=conversation.id,
        consumed=outcome.consumed,
        outbound=outcome.outbound,
        result=outcome.result,
    )
