"""arq jobs of the payments domain: create a payment link's Checkout Session and send it (after the commit that
created the pending link), and a sweep for links whose job was lost."""

from __future__ import annotations

from datetime import timedelta

from arq import Retry
from arq.connections import ArqRedis

from salesbot import queues
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models._columns import utcnow
from salesbot.outbox.service import schedule_delivery
from salesbot.payments import repository, service
from salesbot.payments.base import CheckoutProvider
from salesbot.payments.stripe import StripeCheckout
from salesbot.resources import Resources
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

CREATE_LINK_JOB = "create_payment_link"
# Pending links untouched this long are re-enqueued by the sweep (their job was lost with Redis, or a worker died).
SWEEP_AFTER_SECONDS = 60
RETRY_BASE_SECONDS = 5


def checkout_provider(resources: Resources) -> CheckoutProvider:
    stripe = resources.settings.stripe
    return StripeCheckout(http=resources.http, api_key=stripe.api_key.get_secret_value(), api_url=stripe.api_url)


async def schedule_links(redis: ArqRedis, link_ids: list[int] | tuple[int, ...], *, suffix: str = "") -> None:
    for link_id in link_ids:
        await redis.enqueue_job(
            CREATE_LINK_JOB, link_id, _job_id=f"payment-link:{link_id}{suffix}", _queue_name=queues.MESSAGING
        )


async def schedule_pending_links(resources: Resources, conversation_id: int) -> None:
    """After a turn's commit: links its acceptance created."""
    if not resources.settings.stripe.enabled:
        return
    async with resources.sessionmaker() as session:
        pending = await repository.pending_link_ids(session, conversation_id=conversation_id)
    await schedule_links(resources.redis, list(pending))


async def create_payment_link(ctx: WorkerContext, link_id: int) -> str:
    """Create the link's Checkout Session and write its message; transient provider failures back off."""
    resources = ctx["resources"]
    async with unit_of_work(resources.sessionmaker) as session:
        outcome = await service.create_link(session, resources.settings, checkout_provider(resources), link_id)
    if outcome.result == "retry":
        attempt = ctx.get("job_try", 1)
        raise Retry(defer=RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    if outcome.result == "sent" and outcome.conversation_id is not None:
        await schedule_delivery(resources.redis, outcome.conversation_id)
    return outcome.result


async def sweep_payment_links(ctx: WorkerContext) -> int:
    """Cron: pending links whose job never ran."""
    resources = ctx["resources"]
    if not resources.settings.stripe.enabled:
        return 0
    async with resources.sessionmaker() as session:
        stale = await repository.pending_link_ids(session, older_than=utcnow() - timedelta(seconds=SWEEP_AFTER_SECONDS))
    minute = int(utcnow().timestamp() // 60)
    await schedule_links(resources.redis, list(stale), suffix=f":sweep:{minute}")
    if stale:
        log.warning("payments.links_recovered", count=len(stale))
    return len(stale)
