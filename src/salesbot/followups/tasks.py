"""arq cron of the follow-ups domain (a thin shell: the playbook, the providers and the clock)."""

from __future__ import annotations

from salesbot.agent.playbook import load_playbook
from salesbot.followups.service import run_follow_ups
from salesbot.models._columns import utcnow
from salesbot.outbox.service import schedule_delivery
from salesbot.outbox.tasks import providers
from salesbot.worker_context import WorkerContext

# The second of each minute the cron runs at (rules count in hours).
RUN_AT_SECOND = 30


async def follow_up_conversations(ctx: WorkerContext) -> str:
    """Cron: schedule, cancel and send the playbook's follow-ups; delivery is scheduled after the commits."""
    resources = ctx["resources"]
    playbook = load_playbook(resources.settings.conversation.playbook_path or None)
    run = await run_follow_ups(resources, playbook, providers(ctx), now=utcnow())
    for conversation_id in run.deliver:
        await schedule_delivery(resources.redis, conversation_id)
    return f"scheduled={run.scheduled} sent={run.sent} cancelled={run.cancelled} skipped={run.skipped}"
