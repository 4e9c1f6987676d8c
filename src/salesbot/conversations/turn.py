"""One conversation turn: consume the customer's unprocessed messages and write the answer into the outbox.

A turn has three steps, and no transaction, row lock or connection is held during the second (the LLM):

1. Start (a short, committed transaction): apply manager echoes whose takeover job was lost, release an expired
   takeover, and count an attempt on every waiting customer message. A burst that was attempted
   `MAX_TURN_ATTEMPTS` times already (its turns were killed with their worker) is not generated again: the
   customer gets the playbook's handoff text and the chat goes to a manager. A turn that fails with an error is
   retried by its job (`tasks.TURN_ATTEMPTS`), which hands the chat over itself after the last try.
2. Generate: the waiting messages, the conversation and the customer (as the start committed them for the first
   draft, read again in a short transaction for a later one) are *detached*, so what the agent changes on them
   stays in memory. The agent reads and writes through a
   `Draft` (salesbot.agent.draft): each of its steps (a tool call) is a short transaction that is rolled back,
   and the rows its tools write (quotes, acceptances, CRM sync requests) are kept as effects for the commit;
   between steps, while the model thinks, nothing is open. The generation runs within the turn's budget
   (`TURN_BUDGET_SECONDS`): LLM requests end at the deadline and the offline responder answers. A generation
   still running shortly before arq's job timeout (a hung tool or database) is cancelled and the customer gets
   the handoff text.
3. Commit (salesbot.conversations.turn_commit, one short transaction): conversation, customer and the waiting
   messages are locked and checked. A burst another turn consumed meanwhile drops the draft; a chat taken over
   or closed meanwhile, or a customer who opted out meanwhile, withdraws it (nothing reaches the outbox or the
   database); newer customer messages discard it and the agent runs again with the whole burst (a bounded
   number of times, within the budget). Otherwise the agent's changes and kept writes are applied to the fresh
   rows, the messages are marked processed and the reply parts are written as pending outbound rows, all in
   one commit.

Two turns of one chat: the Redis lock of the turn job keeps them apart; if it were lost, both may generate, but
the commit locks the burst's rows and finds them processed by the turn that committed first, so the burst is
answered once. What every generation asked the LLMs is recorded when its fate is decided, so discarded,
withdrawn and timed-out drafts are counted too. A crash before the commit leaves the messages unprocessed (and
nothing of the draft in the database) and the retried job does the whole turn again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from salesbot.agent.draft import Draft
from salesbot.agent.language import conversation_language
from salesbot.agent.playbook import load_playbook
from salesbot.agent.reply import AgentReply, LLMUsage, ReplyGenerator, ReplyRequest
from salesbot.conversations import consent, repository, service
from salesbot.conversations.ownership import human_owns, takeover_expired
from salesbot.conversations.turn_commit import (
    Burst,
    Plan,
    TurnOutcome,
    advisory_lock,
    commit,
    count_usage,
    move,
    record,
)
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models import Conversation, ConversationStatus, Customer, Message, Owner
from salesbot.models._columns import utcnow
from salesbot.resources import Resources
from salesbot.settings import Settings

__all__ = ["MAX_TURN_ATTEMPTS", "TurnOutcome", "give_up", "run_turn"]

log = get_logger(__name__)

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
    started = await _start(resources, conversation_id, outcome)
    if started is None:
        return outcome
    attempts, burst = started
    if attempts > MAX_TURN_ATTEMPTS:
        log.warning("turn.attempts_exhausted", conversation=conversation_id, attempts=attempts)
        await give_up(resources, conversation_id, outcome, reason="the assistant could not answer; please take over")
        return outcome
    # Generations whose usage is not written yet (the one under way).
    pending: list[LLMUsage] = []
    try:
        async with asyncio.timeout_at(budget.hard_deadline):
            await _answer(resources, generator, budget, conversation_id, outcome, pending, burst)
    except TimeoutError:
        requests = sum(item.requests for item in pending)
        log.warning(
            "turn.budget_exhausted", conversation=conversation_id, generations=outcome.agent_runs, requests=requests
        )
        await give_up(
            resources, conversation_id, outcome, reason="the assistant ran out of time; please take over", usage=pending
        )
    return outcome


async def _answer(
    resources: Resources,
    generator: ReplyGenerator,
    budget: _Budget,
    conversation_id: int,
    outcome: TurnOutcome,
    pending: list[LLMUsage],
    started: Burst | None,
) -> None:
    """Steps 2 and 3 until a draft is committed or withdrawn (or nothing waits any more). `started`: the burst as
    the start step left it (its rows are read again for each later draft)."""
    settings = resources.settings
    regenerations = 0
    requests = 0
    while True:
        burst, started = started or await _read(resources, conversation_id), None
        if burst is None:
            return
        plan = _consent(resources, burst.customer, burst.messages)
        if plan.silent_reason is None and human_owns(burst.conversation, utcnow()):
            plan.silent_reason = "silent_human_owner"
        if plan.silent_reason is None:
            plan.draft = Draft.deferred_on(resources.sessionmaker)
            outcome.agent_runs += 1
            try:
                await _generate(resources, generator, budget, burst, plan, pending)
            finally:
                await plan.draft.close()
            requests += sum(usage.requests for usage in plan.usage)
        # No regeneration once the budget or the turn's LLM requests are spent: the newer messages get a turn of
        # their own (with a budget of its own) instead of a fourth and fifth draft.
        may_regenerate = (
            regenerations < settings.conversation.turn_max_regenerations
            and not budget.spent()
            and requests < settings.llm.max_requests_per_turn
        )
        then = await commit(resources, burst, plan, outcome, may_regenerate=may_regenerate, pending=pending)
        if then == "done":
            return
        if then == "regenerate":
            regenerations += 1


async def _start(resources: Resources, conversation_id: int, outcome: TurnOutcome) -> tuple[int, Burst | None] | None:
    """Step 1; returns the attempts of the burst's most tried message (None: nothing for the agent to do) and the
    burst as committed by this step, detached, for the first draft (None: read it again, a manager's echo was
    applied).

    Reusing the rows saves the first draft a transaction of its own that would read them again a moment later:
    whatever arrives or changes meanwhile is what the commit step checks for anyway."""
    async with unit_of_work(resources.sessionmaker) as session:
        await advisory_lock(session, conversation_id)
        conversation = await repository.get_conversation(session, conversation_id)
        if conversation is None:
            return None
        messages = await repository.lock_unprocessed_inbound(session, conversation_id)
        if not messages:
            return None
        if conversation.status is ConversationStatus.CLOSED:
            await move(session, conversation, messages, outcome)
            return None
        # A manager's echo whose takeover job never ran (its Redis queue was lost) still silences the bot.
        echoes = await repository.unapplied_manager_echoes(session, conversation_id)
        for echo_id in echoes:
            await service.apply_manager_echo(
                session, conversation_id, echo_id, hours=resources.settings.conversation.human_takeover_hours
            )
        if takeover_expired(conversation, utcnow()):
            conversation.owner, conversation.owner_until = Owner.BOT, None
        for message in messages:
            message.turn_attempts += 1
        outcome.debounce_seconds = (utcnow() - max(m.created_at for m in messages)).total_seconds()
        attempts = max(message.turn_attempts for message in messages)
    # The session is closed: the rows are detached with what this step committed (expire_on_commit is off).
    customer = conversation.customer
    burst = None if echoes else Burst(conversation, customer, messages, was_opted_out=customer.opted_out_at is not None)
    return attempts, burst


async def _read(resources: Resources, conversation_id: int) -> Burst | None:
    """The waiting customer messages, the conversation and the customer as of now, detached (step 2 starts)."""
    async with unit_of_work(resources.sessionmaker) as session:
        messages = await repository.lock_unprocessed_inbound(session, conversation_id, lock=False)
        state = await repository.read_detached(session, conversation_id)
        if not messages or state is None:
            return None
        for message in messages:
            session.expunge(message)
    conversation, customer = state
    return Burst(conversation, customer, messages, was_opted_out=customer.opted_out_at is not None)


def _consent(resources: Resources, customer: Customer, messages: Sequence[Message]) -> Plan:
    """Opt-out and opt-in keywords of the burst (applied to the customer copy) and the messages the agent answers."""
    settings = resources.settings.conversation
    plan = Plan()
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
    resources: Resources,
    generator: ReplyGenerator,
    budget: _Budget,
    burst: Burst,
    plan: Plan,
    pending: list[LLMUsage],
) -> None:
    """Run the agent for the plan's messages; its LLM requests end at the budget's deadline."""
    started = time.perf_counter()
    assert plan.draft is not None
    generation = LLMUsage()
    plan.usage = [generation]
    pending.append(generation)
    plan.reply = await generator(
        ReplyRequest(
            session=plan.draft.session,
            resources=resources,
            conversation=burst.conversation,
            customer=burst.customer,
            new_messages=tuple(plan.agent_messages),
            deadline=budget.llm_deadline,
            usage=generation,
            draft=plan.draft,
        )
    )
    log.info(
        "turn.generated",
        conversation=burst.conversation.id,
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
        await advisory_lock(session, conversation_id)
        conversation, customer = await repository.lock_conversation_and_customer(session, conversation_id)
        count_usage(session, conversation, usage, "timed_out")
        messages = await repository.lock_unprocessed_inbound(session, conversation_id)
        if not messages:
            return
        plan = Plan(silent_reason="silent_opted_out" if customer.opted_out_at is not None else None)
        if human_owns(conversation, utcnow()):
            plan.silent_reason = "silent_human_owner"
        conversation.needs_attention = True
        if plan.silent_reason is None:
            plan.reply = _handoff(resources, conversation, customer, messages)
            conversation.facts = {**(conversation.facts or {}), "handoff_reason": reason}
        await record(session, resources, conversation, messages, plan, outcome)
        if plan.reply is not None:
            outcome.result = "handoff"
