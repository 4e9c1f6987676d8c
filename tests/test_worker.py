from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select

from salesbot import queues
from salesbot.cli import build_parser
from salesbot.conversations.tasks import release_expired_takeovers
from salesbot.inbox import burst
from salesbot.knowledge.tasks import INVENTORY_JOB_TIMEOUT_SECONDS
from salesbot.models import Channel, Conversation, Customer, Owner
from salesbot.models._columns import utcnow
from salesbot.outbox import service as outbox
from salesbot.payments import tasks as payment_tasks
from salesbot.resources import Resources
from salesbot.settings import InventorySettings, Settings
from salesbot.worker import process_options, queue_options, serve
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


def names(options: dict[str, Any]) -> set[str]:
    functions = [getattr(job, "name", "") for job in [*options["functions"], *options["cron_jobs"]]]
    return {name.removeprefix("cron:") for name in functions}


def test_each_queue_has_a_worker_with_its_own_jobs_slots_and_timeouts(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"worker_max_jobs": 64, "worker_messaging_max_jobs": 12})
    turns, messaging, scheduled = process_options(settings)
    assert (turns["queue_name"], names(turns), turns["max_jobs"]) == (queues.TURNS, {"run_turn"}, 64)
    assert messaging["queue_name"] == queues.MESSAGING
    assert names(messaging) == {"deliver_outbox", "apply_takeover", "send_alert", "create_payment_link", "sync_crm"}
    assert messaging["max_jobs"] == 12
    # Due jobs start within 50 ms, not arq's default 0.5 s (paid twice per reply: turn wake-up, delivery).
    assert turns["poll_delay"] == messaging["poll_delay"] == 0.05
    # No function of their own allows itself more than the job timeout: arq leases a running job for its worker's
    # longest timeout + 10 s, so a killed turn or delivery is re-run after WORKER_JOB_TIMEOUT_SECONDS + 10 s.
    for options in (turns, messaging):
        assert options["cron_jobs"] == []
        assert all(job.timeout_s is None for job in options["functions"])
    assert scheduled["queue_name"] == queues.SCHEDULED
    sweeps = {
        "release_expired_takeovers",
        "sweep_stalled_turns",
        "sweep_stalled_outbox",
        "drain_inbox_spool",
        "sweep_payment_links",
        "sweep_crm",
        "dispatch_alerts",
        "follow_up_conversations",
    }
    assert names(scheduled) == sweeps

    configured = settings.model_copy(
        update={"inventory": InventorySettings(source="file", file_path=str(tmp_path / "stock.csv"))}
    )
    scheduled = queue_options(configured, queues.SCHEDULED)
    assert names(scheduled) == {*sweeps, "sync_inventory"}
    assert max(job.timeout_s for job in scheduled["cron_jobs"]) == INVENTORY_JOB_TIMEOUT_SECONDS
    assert names(queue_options(configured, queues.TURNS)) == {"run_turn"}
    # `salesbot worker --queues ...` serves only those (scale-out).
    assert [options["queue_name"] for options in process_options(settings, ["messaging"])] == [queues.MESSAGING]


JOB_FUNCTIONS = {"turn": "run_turn", "deliver": "deliver_outbox", "payment-link": "create_payment_link"}


async def test_every_job_is_enqueued_on_the_queue_whose_worker_runs_it(redis: ArqRedis, settings: Settings) -> None:
    await burst.signal_message(redis, settings.conversation, 1)
    await burst.schedule_turn_now(redis, 1, job_suffix="sweep")
    await outbox.schedule_delivery(redis, 2)
    await outbox.schedule_delivery_extra(redis, 2)
    await payment_tasks.schedule_links(redis, [7])
    runs = {options["queue_name"]: names(options) for options in process_options(settings)}
    queued = {queue: [job_id.decode() for job_id in await redis.zrange(queue, 0, -1)] for queue in runs}
    assert sorted(queued[queues.TURNS]) == ["turn:1:0", "turn:1:sweep"]
    assert "deliver:2:0" in queued[queues.MESSAGING]
    assert len(queued[queues.MESSAGING]) == 3
    for queue, job_ids in queued.items():
        for job_id in job_ids:
            assert await redis.exists(f"arq:job:{job_id}"), job_id
            function = {"turn": "run_turn", "deliver": "deliver_outbox", "payment-link": "create_payment_link"}[
                job_id.split(":")[0]
            ]
            assert function in runs[queue]


def test_worker_queues_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["worker", "--queues", "turns, messaging"]).queues == ["turns", "messaging"]
    assert parser.parse_args(["worker"]).queues is None
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["worker", "--queues", "turns,deliveries"])
    assert exited.value.code == 2
    assert "unknown queue deliveries" in capsys.readouterr().err


async def test_the_worker_process_runs_every_queue_until_empty_in_burst_mode(
    resources: Resources, redis: ArqRedis
) -> None:
    await burst.schedule_turn_now(redis, 404)
    await outbox.schedule_delivery(redis, 404)
    # `salesbot worker --burst`: one process, one arq worker per queue, one set of resources.
    await serve(resources.settings, process_options(resources.settings), burst=True, handle_signals=False)
    assert [await redis.zcard(queue) for queue in queues.BY_NAME.values()] == [0, 0, 0]
    # A stopped worker takes its heartbeats away (readiness must not count a process that is gone).
    assert await redis.exists(*[queues.heartbeat_key(queue) for queue in queues.BY_NAME.values()]) == 0
