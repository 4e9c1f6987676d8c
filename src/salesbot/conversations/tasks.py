"""arq jobs of the conversations domain (thin shells around services; the job is the unit of work)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from arq import Retry

from salesbot.agent.reply import ReplyGenerator
from salesbot.conversations import repository, service, turn
from salesbot.crm.tasks import schedule_crm_sync
from salesbot.db import unit_of_work
from salesbot.inbox import burst
from salesbot.kit import tracing
from salesbot.kit.errors import NotFoundError
from salesbot.kit.logging import get_logger
from salesbot.kit.redis_lock import FlaggingLock
from salesbot.media import service as media
from salesbot.models._columns import utcnow
from salesbot.observability import metrics
from salesbot.outbox.service import schedule_delivery
from salesbot.outbox.tasks import providers
from salesbot.payments.tasks import schedule_pending_links
from salesbot.settings import Settings
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

# A failing agent (a bug, a database error mid-turn) is tried this often; the last failure hands the chat over.
# (A turn killed with its worker counts towards `turn.MAX_TURN_ATTEMPTS` instead.)
TURN_ATTEMPTS = 3
# The first retry's delay; each next one waits four times longer (2 s, 8 s).
TURN_RETRY_BASE_SECONDS = 2.0
# Customer messages still unprocessed this long after the debounce cap are recovered by the sweep.
SWEEP_GRACE_SECONDS = 10
SWEEP_BATCH = 200


def lock_ttl_ms(settings: Settings) -> int:
    """A per-chat lock outlives the longest legitimate job (arq cancels at the job timeout) but expires before
    arq re-runs a crashed worker's job (job timeout + 10 s), so recovery never waits for a dead holder."""
    return int((settings.worker_job_timeout_seconds + 2) * 1000)


def turn_lock_key(conversation_id: int) -> str:
    return f"sb:turn:lock:{conversation_id}"


def reply_generator(ctx: WorkerContext) -> ReplyGenerator:
    generator = ctx.get("reply_generator")
    if generator is None:
        # Imported lazily: the agent pulls in pydantic-ai and model clients, which only turns need.
        from salesbot.agent.service import generate_reply

        generator = ctx["reply_generator"] = generate_reply
    return generator


async def run_turn(ctx: WorkerContext, conversation_id: int) -> str:
    """Answer a conversation's burst once its silence window has passed (one turn per chat at a time)."""
    resources = ctx["resources"]
    redis = resources.redis
    lock = FlaggingLock(redis, turn_lock_key(conversation_id), lock_ttl_ms(resources.settings))
    acquired = await lock.acquire()
    if not acquired.ok:
        # The holder runs the turn again when it releases the lock (the flag is set). A holder that died is
        # re-run by arq after its job timeout + 10 s, finds the expired lock and the flag, and does the same.
        return "busy"
    outcome: turn.TurnOutcome | None = None
    started = time.monotonic()
    try:
        take = await burst.take_burst(redis, resources.settings.conversation, conversation_id)
        if not take.taken:
            await burst.schedule_turn_at(
                redis, conversation_id, generation=take.generation, due_ms=take.due_ms, wait_ms=take.wait_ms
            )
            return "waiting"
        async with tracing.job_span(redis, "turn", job=f"turn:{conversation_id}", conversation=conversation_id):
            # Customer files are fetched (voice notes transcribed) before the turn, outside its transaction.
            await media.prepare(resources, providers(ctx), conversation_id)
            outcome = await turn.run_turn(resources, media.answering(reply_generator(ctx)), conversation_id)
            if outcome.outbound:
                await tracing.hand_over(redis, f"deliver:{conversation_id}")
    except (Retry, asyncio.CancelledError):
        raise
    except Exception as exc:
        attempt = ctx.get("job_try", 1)
        if attempt < TURN_ATTEMPTS:
            log.exception("turn.error_retrying", conversation=conversation_id, attempt=attempt)
            raise Retry(defer=TURN_RETRY_BASE_SECONDS * 4 ** (attempt - 1)) from exc
        log.exception("turn.failed", conversation=conversation_id, attempt=attempt)
        outcome = turn.TurnOutcome(conversation_id)
        await turn.give_up(resources, conversation_id, outcome, reason="the assistant kept failing; please take over")
    finally:
        if await lock.release():
            await burst.schedule_turn_now(redis, conversation_id)
    assert outcome is not None
    await metrics.record_turn(outcome, time.monotonic() - started)
    if outcome.outbound:
        await schedule_delivery(redis, conversation_id)
    if outcome.agent_runs:
        # Payment links the turn's acceptance of a quote created, CRM records it changed (committed now).
        await schedule_pending_links(resources, conversation_id)
        await schedule_crm_sync(resources, conversation_id)
    if outcome.moved_to is not None:
        await burst.schedule_turn_now(redis, outcome.moved_to)
    return outcome.result


async def apply_takeover(ctx: WorkerContext, conversation_id: int, message_id: int) -> bool:
    """A manager wrote from the provider's inbox (Wazzup echo): the human owns the chat for a while."""
    resources = ctx["resources"]
    try:
        async with unit_of_work(resources.sessionmaker) as session:
            conversation = await service.apply_manager_echo(
                session, conversation_id, message_id, hours=resources.settings.conversation.human_takeover_hours
            )
    except NotFoundError:
        return False
    return conversation is not None


async def sweep_stalled_turns(ctx: WorkerContext) -> int:
    """Cron: schedule turns for customer messages that waited past the debounce cap (a lost job, Redis loss)."""
    resources = ctx["resources"]
    settings = resources.settings.conversation
    cutoff = utcnow() - timedelta(seconds=settings.debounce_max_seconds + SWEEP_GRACE_SECONDS)
    async with unit_of_work(resources.sessionmaker) as session:
        waiting = await repository.conversations_with_stalled_inbound(session, older_than=cutoff, limit=SWEEP_BATCH)
    # A chat whose turn is running (the model may think for a while, holding no row) is not stalled: its lock
    # is held, and expires with a holder that died.
    stalled = [chat for chat in waiting if not await resources.redis.exists(turn_lock_key(chat))]
    minute = int(time.time() // 60)
    for conversation_id in stalled:
        await burst.schedule_turn_now(resources.redis, conversation_id, job_suffix=f"sweep:{minute}")
    if stalled:
        log.warning("turn.stalled_recovered", count=len(stalled))
    return len(stalled)


async def release_expired_takeovers(ctx: WorkerContext) -> int:
    """Cron: chats whose manager takeover expired (HUMAN_TAKEOVER_HOURS) go back to the bot."""
    async with unit_of_work(ctx["resources"].sessionmaker) as session:
        released = await repository.release_expired_takeovers(session, now=utcnow())
    if released:
        log.info("conversations.takeovers_released", count=released)
    return released
