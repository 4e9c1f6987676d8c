"""One conversation turn: consume the customer's unprocessed messages and write the answer into the outbox.

Everything happens in ONE transaction: the burst's inbound rows are locked (`FOR UPDATE`), consent keywords and
ownership are applied, the agent runs inside a SAVEPOINT, the rows are marked processed and the reply parts
are written as pending outbound rows. A crash anywhere before the commit leaves the messages unprocessed and
the retried job does the whole turn again; after the commit the turn is done and only delivery remains.

If newer customer messages were committed while the agent generated, the draft is discarded (savepoint rolled
back, including whatever the agent changed) and the agent runs again with the whole burst, a bounded number of
times. A transaction-scoped advisory lock per conversation makes two turns of one chat impossible even if the
Redis lock were lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from salesbot.agent.reply import AgentReply, ReplyGenerator, ReplyRequest
from salesbot.conversations import consent, repository, service
from salesbot.conversations.ownership import human_owns, takeover_expired
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models import Author, Conversation, ConversationStatus, Customer, Message, Owner
from salesbot.models._columns import utcnow
from salesbot.outbox.gate import CONSENT_KEY_PREFIX
from salesbot.outbox.service import write_outbound
from salesbot.outbox.splitting import part_limit
from salesbot.resources import Resources

log = get_logger(__name__)

# Namespace of the per-conversation advisory lock (pg_advisory_xact_lock(namespace, id)).
TURN_LOCK_NAMESPACE = 0x5B7E


@dataclass
class TurnOutcome:
    conversation_id: int
    consumed: int = 0
    outbound: int = 0
    agent_runs: int = 0
    # What the turn did: replied, silent_human_owner, silent_opted_out, consent_only, empty_reply,
    # nothing_to_do, moved (messages of a closed conversation went to the customer's active one).
    result: str = "nothing_to_do"
    moved_to: int | None = None


@dataclass
class _Plan:
    """What the turn will write, decided inside the savepoint."""

    confirmations: list[tuple[consent.Command, Message]] = field(default_factory=list)
    agent_messages: list[Message] = field(default_factory=list)
    reply: AgentReply | None = None
    silent_reason: str | None = None


async def run_turn(resources: Resources, generator: ReplyGenerator, conversation_id: int) -> TurnOutcome:
    """Consume the conversation's pending customer messages; commits. Delivery is scheduled by the caller."""
    outcome = TurnOutcome(conversation_id)
    async with unit_of_work(resources.sessionmaker) as session:
        await session.execute(select(func.pg_advisory_xact_lock(TURN_LOCK_NAMESPACE, conversation_id % 2_147_483_647)))
        conversation = await repository.get_conversation(session, conversation_id)
        if conversation is None:
            return outcome
        messages = await repository.lock_unprocessed_inbound(session, conversation_id)
        if not messages:
            return outcome
        if conversation.status is ConversationStatus.CLOSED:
            # The inbox attached these a moment before a manager closed the chat: they belong to a new one.
            target = await repository.find_or_create_active_conversation(
                session, customer_id=conversation.customer_id, channel=conversation.channel
            )
            await repository.move_messages(session, [m.id for m in messages], to_conversation_id=target)
            outcome.result, outcome.moved_to = "moved", target
            return outcome
        customer = conversation.customer
        # A manager's echo whose takeover job never ran (its Redis queue was lost) still silences the bot.
        for echo_id in await repository.unapplied_manager_echoes(session, conversation_id):
            await service.apply_manager_echo(
                session, conversation_id, echo_id, hours=resources.settings.conversation.human_takeover_hours
            )
        now = utcnow()
        if takeover_expired(conversation, now):
            conversation.owner, conversation.owner_until = Owner.BOT, None
        plan, messages = await _decide(session, resources, generator, conversation, customer, messages, outcome)
        await _record(session, resources, conversation, customer, messages, plan, outcome)
    return outcome


async def _decide(
    session: AsyncSession,
    resources: Resources,
    generator: ReplyGenerator,
    conversation: Conversation,
    customer: Customer,
    messages: list[Message],
    outcome: TurnOutcome,
) -> tuple[_Plan, list[Message]]:
    """Consent, ownership and the agent, redone with the whole burst when newer messages arrive meanwhile."""
    max_regenerations = resources.settings.conversation.turn_max_regenerations
    attempt = 0
    while True:
        savepoint = await session.begin_nested()
        plan = await _plan(session, resources, generator, conversation, customer, messages, outcome)
        newer = await repository.lock_unprocessed_inbound(session, conversation.id, after_id=messages[-1].id)
        if not newer or attempt >= max_regenerations:
            await savepoint.commit()
            if newer:
                # They stay unprocessed; the turn scheduled by their own arrival answers them next.
                log.info("turn.regeneration_limit", conversation=conversation.id, left=len(newer))
            return plan, messages
        await savepoint.rollback()
        # The rollback expired what the agent changed; reload before the next attempt.
        await session.refresh(customer)
        await session.refresh(conversation)
        set_committed_value(conversation, "customer", customer)
        messages = messages + newer
        attempt += 1
        log.info("turn.draft_discarded", conversation=conversation.id, newer=len(newer), attempt=attempt)


async def _plan(
    session: AsyncSession,
    resources: Resources,
    generator: ReplyGenerator,
    conversation: Conversation,
    customer: Customer,
    messages: Sequence[Message],
    outcome: TurnOutcome,
) -> _Plan:
    settings = resources.settings.conversation
    plan = _Plan()
    now = utcnow()
    replayed = consent.replay(messages, settings, opted_out_at=customer.opted_out_at)
    if replayed.changed:
        customer.opted_out_at = replayed.opted_out_at
    plan.confirmations, plan.agent_messages = replayed.confirmations, replayed.agent_messages
    if customer.opted_out_at is not None:
        plan.silent_reason = "silent_opted_out"
    elif human_owns(conversation, now):
        plan.silent_reason = "silent_human_owner"
    elif not plan.agent_messages:
        plan.silent_reason = "consent_only"
    if plan.silent_reason is not None:
        plan.agent_messages.clear()
        await session.flush()
        return plan
    started = time.perf_counter()
    plan.reply = await generator(
        ReplyRequest(
            session=session,
            resources=resources,
            conversation=conversation,
            customer=customer,
            new_messages=tuple(plan.agent_messages),
        )
    )
    outcome.agent_runs += 1
    log.info(
        "turn.generated",
        conversation=conversation.id,
        messages=len(plan.agent_messages),
        model=plan.reply.model,
        handoff=plan.reply.handoff,
        ms=round((time.perf_counter() - started) * 1000),
    )
    await session.flush()
    return plan


async def _record(
    session: AsyncSession,
    resources: Resources,
    conversation: Conversation,
    customer: Customer,
    messages: Sequence[Message],
    plan: _Plan,
    outcome: TurnOutcome,
) -> None:
    now = utcnow()
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
    reply = plan.reply
    if reply is not None and reply.text.strip():
        parts = await write_outbound(
            session,
            conversation,
            # A handoff reply goes out although a human owns the chat now: system messages pass that gate.
            text=reply.text,
            author=Author.SYSTEM if reply.handoff else Author.BOT,
            key_prefix=f"reply:{conversation.id}:{messages[-1].id}",
            limit=limit,
            in_reply_to_id=messages[-1].id,
        )
        head = parts[0]
        head.model, head.fallback_used = reply.model, reply.fallback_used
        head.tokens_in, head.tokens_out, head.cost = reply.tokens_in, reply.tokens_out, reply.cost
        head.latency_ms, head.tool_calls = reply.latency_ms, reply.tool_calls
        written += parts
        # SQL-side increments: a manager message may update the counters concurrently.
        conversation.turn_count = Conversation.turn_count + 1
        conversation.tokens_in_total = Conversation.tokens_in_total + reply.tokens_in
        conversation.tokens_out_total = Conversation.tokens_out_total + reply.tokens_out
        conversation.llm_cost_total = Conversation.llm_cost_total + reply.cost
        outcome.result = "replied"
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
