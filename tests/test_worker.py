from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from salesbot.conversations.tasks import release_expired_takeovers
from salesbot.models import Channel, Conversation, Customer, Owner
from salesbot.models._columns import utcnow
from salesbot.resources import Resources
from salesbot.worker_context import WorkerContext


async def test_expired_takeovers_return_to_the_bot(resources: Resources) -> None:
    now = utcnow()
    async with resources.sessionmaker() as session:
        expired = Conversation(
            customer=Customer(channel=Channel.CONSOLE, chat_id="100"),
            channel=Channel.CONSOLE,
            owner=Owner.HUMAN,
            owner_until=now - timedelta(minutes=1),
        )
        current = Conversation(
            customer=Customer(channel=Channel.CONSOLE, chat_id="200"),
            channel=Channel.CONSOLE,
            owner=Owner.HUMAN,
            owner_until=now + timedelta(hours=1),
        )
        session.add_all([expired, current])
        await session.commit()

    ctx: WorkerContext = {"resources": resources}
    assert await release_expired_takeovers(ctx) == 1

    async with resources.sessionmaker() as session:
        owners = {row.id: row.owner for row in await session.execute(select(Conversation.id, Conversation.owner))}
    assert owners == {expired.id: Owner.BOT, current.id: Owner.HUMAN}


def test_a_crashed_workers_job_is_rerun_after_the_job_timeout_even_with_long_cron_jobs(resources: Resources) -> None:
    from salesbot.settings import InventorySettings
    from salesbot.worker import build_worker, crash_recovery_seconds

    # The inventory sync cron job allows 300 s; arq would lease every job that long (310 s of crash recovery).
    settings = resources.settings.model_copy(
        update={"inventory": InventorySettings(source="file", file_path="/nonexistent/stock.csv")}
    )
    from arq.worker import Worker

    from salesbot.worker import worker_options

    plain = Worker(**worker_options(settings), burst=True)
    assert plain.in_progress_timeout_s == 310  # arq's own choice: the longest cron timeout + 10 s
    plain._pool = None
    worker = build_worker(settings, burst=True)
    try:
        assert "sync_inventory" in worker.functions
        assert worker.in_progress_timeout_s == crash_recovery_seconds(settings)
        # Due jobs start within 50 ms, not arq's default 0.5 s (paid twice per reply: turn wake-up, delivery).
        assert worker.poll_delay_s == 0.05
        assert crash_recovery_seconds(settings) == settings.worker_job_timeout_seconds + 10
    finally:
        worker._pool = None
