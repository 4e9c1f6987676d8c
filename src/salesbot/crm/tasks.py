"""arq jobs of the CRM sync: push a conversation's contact and deal (after the commit that marked them pending),
retried with backoff, and a sweep for links that are due (lost jobs, retries after a worker restart)."""

from __future__ import annotations

import uuid

from arq import Retry
from arq.connections import ArqRedis

from salesbot import queues
from salesbot.crm import repository, service
from salesbot.crm.base import CrmProvider
from salesbot.crm.hubspot import HubSpotCrm
from salesbot.crm.zoho import ZohoCrm
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models._columns import utcnow
from salesbot.resources import Resources
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)

SYNC_JOB = "sync_crm"


def crm_provider(resources: Resources) -> CrmProvider | None:
    """The configured CRM (settings.crm.provider), or None."""
    crm = resources.settings.crm
    if crm.provider == "hubspot":
        return HubSpotCrm(
            http=resources.http,
            token=crm.hubspot_token.get_secret_value(),
            api_url=crm.hubspot_api_url,
            pipeline=crm.hubspot_pipeline,
        )
    if crm.provider == "zoho":
        return ZohoCrm(
            http=resources.http,
            redis=resources.redis,
            client_id=crm.zoho_client_id,
            client_secret=crm.zoho_client_secret.get_secret_value(),
            refresh_token=crm.zoho_refresh_token.get_secret_value(),
            accounts_url=crm.zoho_accounts_url,
            api_domain=crm.zoho_api_domain,
        )
    return None


async def _enqueue(redis: ArqRedis, conversation_ids: list[int], *, suffix: str) -> None:
    for conversation_id in conversation_ids:
        await redis.enqueue_job(
            SYNC_JOB, conversation_id, _job_id=f"crm:{conversation_id}:{suffix}", _queue_name=queues.MESSAGING
        )


async def schedule_crm_sync(resources: Resources, conversation_id: int) -> None:
    """After a commit that may have marked the conversation's CRM links pending."""
    provider = resources.settings.crm.provider
    if not provider:
        return
    async with resources.sessionmaker() as session:
        due = await repository.due_conversations(
            session, provider=provider, now=utcnow(), conversation_id=conversation_id
        )
    # A unique id per request: a sync running now may have read the links before this change.
    await _enqueue(resources.redis, list(due), suffix=uuid.uuid4().hex)


async def sync_crm(ctx: WorkerContext, conversation_id: int) -> str:
    resources = ctx["resources"]
    provider = crm_provider(resources)
    if provider is None:
        return "off"
    async with unit_of_work(resources.sessionmaker) as session:
        outcome = await service.sync_conversation(session, resources.settings, provider, conversation_id, now=utcnow())
    if outcome.result in ("retry", "waiting") and outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.result


async def sweep_crm(ctx: WorkerContext) -> int:
    """Cron: conversations whose CRM links are due and have no job (Redis lost it, a worker restarted)."""
    resources = ctx["resources"]
    provider = resources.settings.crm.provider
    if not provider:
        return 0
    async with resources.sessionmaker() as session:
        due = await repository.due_conversations(session, provider=provider, now=utcnow())
    minute = int(utcnow().timestamp() // 60)
    await _enqueue(resources.redis, list(due), suffix=f"sweep:{minute}")
    return len(due)
