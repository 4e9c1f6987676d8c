"""arq jobs of the conversations domain (thin shells around services; the job is the unit of work)."""

from __future__ import annotations

from salesbot.conversations import repository
from salesbot.db import unit_of_work
from salesbot.kit.logging import get_logger
from salesbot.models._columns import utcnow
from salesbot.worker_context import WorkerContext

log = get_logger(__name__)


async def release_expired_takeovers(ctx: WorkerContext) -> int:
    """Cron: chats whose manager takeover expired (HUMAN_TAKEOVER_HOURS) go back to the bot."""
    async with unit_of_work(ctx["resources"].sessionmaker) as session:
        released = await repository.release_expired_takeovers(session, now=utcnow())
    if released:
        log.info("conversations.takeovers_released", count=released)
    return released
