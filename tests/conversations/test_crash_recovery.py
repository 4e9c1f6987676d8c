"""SIGKILL a real worker process during the agent run, and again after the provider accepted the reply: after
each restart the pipeline recovers from PostgreSQL and arq, and each customer gets exactly one reply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from salesbot.models import DeliveryStatus, Direction, Message
from tests.conftest import TEST_SECRETS_ENV
from tests.fakes.crash_worker import HANGING_KEY
from tests.fakes.pipeline import (
    PUBLIC_BASE_URL,
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    WAZZUP_CHANNEL,
    WAZZUP_KEY,
    WAZZUP_SECRET,
    Pipeline,
    twilio_params,
)
from tests.fakes.provider_api import FakeProviderServer, FakeTwilioApi, FakeWazzupApi
from tests.fakes.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_SECONDS = 3
# A killed job is re-run after its timeout + 10 s, on a worker process that needs a few seconds to start.
RECOVERY_SECONDS = 60


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.crash_worker"], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


async def test_sigkill_mid_generation_and_after_provider_accepted_yields_exactly_one_reply(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    wazzup_api, twilio_api = FakeWazzupApi(WAZZUP_KEY), FakeTwilioApi(TWILIO_SID, TWILIO_TOKEN)
    server = FakeProviderServer(wazzup_api, twilio_api, hold_after_accept=2)
    settings = pipeline.resources.settings
    async with server.serving():
        env = {
            **os.environ,
            "SALESBOT_ENV_FILE": "",
            "SALESBOT_ENV": "test",
            **TEST_SECRETS_ENV,
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "WAZZUP_API_URL": server.wazzup_url,
            "WAZZUP_API_KEY": WAZZUP_KEY,
            "WAZZUP_CHANNEL_ID": WAZZUP_CHANNEL,
            "WAZZUP_WEBHOOK_SECRET": WAZZUP_SECRET,
            "TWILIO_API_URL": server.twilio_url,
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_WHATSAPP_FROM": TWILIO_FROM,
            "DEBOUNCE_SECONDS": "0.2",
            "DEBOUNCE_MAX_SECONDS": "1",
            "OUTBOX_PACING_SECONDS": "0",
            "WORKER_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT_SECONDS),
            # The inventory sync allows itself 300 s; the killed turns and deliveries must still be re-run after
            # their own job timeout + 10 s (within `eventually`'s minute), not after the sync's 310 s.
            "INVENTORY_SOURCE": "file",
            "INVENTORY_FILE_PATH": str(tmp_path / "no-stock-file-yet.csv"),
        }
        worker = WorkerProcess(env, tmp_path / "worker.log")
        worker.start()
        try:
            await pipeline.wazzup_text("79990001122", "Quote for 40 chairs?")
            await pipeline.twilio(twilio_params("whatsapp:+14155550123", "Quote for 12 desks?"))

            async def both_generating() -> bool:
                return bool(await pipeline.redis.get(HANGING_KEY) == b"2")

            await eventually(both_generating, what="both agent runs in progress", timeout=RECOVERY_SECONDS)
            worker.kill()  # 1: during the agent run, before anything was committed

            async def unanswered() -> bool:
                inbound = await pipeline.messages(direction=Direction.INBOUND)
                return len(inbound) == 2 and all(m.processed_at is None for m in inbound)

            assert await unanswered(), "the killed turns must have left both messages unprocessed"
            worker.start()

            async def both_accepted() -> bool:
                return server.held == 2

            await eventually(both_accepted, what="both replies accepted by the providers", timeout=RECOVERY_SECONDS)
            worker.kill()  # 2: the providers took the replies; the worker never saw their answers
            assert [len(wazzup_api.sent), len(twilio_api.sent)] == [1, 1]
            assert {m.delivery_status for m in await pipeline.messages(direction=Direction.OUTBOUND)} == {
                DeliveryStatus.PENDING
            }
            worker.start()

            async def both_sent() -> bool:
                async with pipeline.resources.sessionmaker() as session:
                    rows = list(await session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)))
                return len(rows) == 2 and all(row.delivery_status is DeliveryStatus.SENT for row in rows)

            await eventually(both_sent, what="both replies marked sent after recovery", timeout=RECOVERY_SECONDS)
        finally:
            worker.stop()

    assert [s.text for s in wazzup_api.sent] == ["Answer to: Quote for 40 chairs?"]
    assert [s.text for s in twilio_api.sent] == ["Answer to: Quote for 12 desks?"]
    # Wazzup refused the resend as a repeated crmMessageId; Twilio was asked (GET) instead of sent to again.
    assert wazzup_api.calls == 2
    assert twilio_api.posts == 1
    rows = await pipeline.messages(direction=Direction.OUTBOUND)
    assert [row.send_attempts for row in rows] == [2, 2]
    twilio_row = next(row for row in rows if row.channel.value == "twilio")
    assert twilio_row.provider_message_id == twilio_api.sent[0].provider_message_id
