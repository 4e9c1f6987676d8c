"""The system-test harness: real `salesbot serve` / `salesbot worker` processes against embedded PostgreSQL and
Redis, with the providers' HTTP APIs and the LLM faked by local servers.

- `Services`: PostgreSQL (+pgvector) and Redis for the whole session, plus a migrated template database with the
  demo catalog; every test gets a fresh copy of it (`CREATE DATABASE ... TEMPLATE`).
- `SalesbotProcess`: one `salesbot` subprocess (API on a free port, or a worker), its log file, SIGKILL/SIGTERM,
  restart. `Supervisor` restarts processes that die on their own, like the deployment's `restart: unless-stopped`.
- `System`: one test's world: database, fakes, processes, a webhook client that signs like the providers do,
  the database read back for assertions, and `eventually()` waits that are bounded in time.

Every process the harness starts is tracked by PID and stopped by PID at the end of the test; nothing else is
touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from salesbot.db import create_engine, create_sessionmaker, unit_of_work
from salesbot.devstack import EmbeddedPostgres, EmbeddedRedis
from salesbot.messaging.twilio import compute_signature
from salesbot.migrate import upgrade
from salesbot.models import Author, Channel, Conversation, DeliveryStatus, Direction, Message
from tests.fakes.llm import FakeLLM
from tests.fakes.provider_api import FakeProviderServer, FakeTwilioApi, FakeWazzupApi, Sent

ROOT = Path(__file__).resolve().parents[2]
SALESBOT = Path(sys.executable).parent / "salesbot"
TEMPLATE_DATABASE = "sb_system_template"
# The processes' embedder, and the one the template's catalog is embedded with (a mismatch turns vector search
# off and makes every memory write fail with a dimension error).
PROCESS_EMBEDDER = "offline"

PUBLIC_BASE_URL = "https://bot.example.test"
WAZZUP_SECRET = "wz-system-7d1f0c4b9a2e48f3b6c5d4e3f2a1b0c9"
WAZZUP_KEY = "wz-system-api-key-0f1e2d3c4b5a69788796"
WAZZUP_CHANNEL = "c0ffee00-06f5-4cac-8413-ba999993f981"
TWILIO_SID = "AC11111111111111111111111111111111"
TWILIO_TOKEN = "twilio-system-auth-token-9876543210"
TWILIO_FROM = "whatsapp:+14155238886"
# Log events that explain a customer left without the agent's answer (printed when a wait for replies times out).
DIAGNOSTIC_EVENTS = (
    "turn.attempts_exhausted",
    "turn.budget_exhausted",
    "turn.failed",
    "turn.error_retrying",
    "outbox.retry_scheduled",
    "outbox.unconfirmed",
    "outbox.failed",
    "Traceback",
    "cancelled, will be run again",
    "max retries",
)
API_TOKEN = "system-api-token-4f3e2d1c0b9a8877"
SECRET_KEY = "system-secret-key-a1b2c3d4e5f60718293a"
ADMIN_PASSWORD = "system-admin-password-1234"
LLM_KEY = "sk-system-test-not-a-real-key"


async def eventually(check: Callable[[], Awaitable[bool]], *, what: str, timeout: float, every: float = 0.1) -> float:
    """Wait until `check()` is true; returns the seconds it took. Fails the test after `timeout` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")
        await asyncio.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- services -----------------------------------------------------------------------------------------------------


class Services:
    """Embedded PostgreSQL and Redis for the session, and the template database every test copies."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        # Tests trade durability for speed; benchmarks measure a durable database (fsync on).
        self.postgres = EmbeddedPostgres(root, tuned_for_tests=not durable)
        self.redis = EmbeddedRedis(root, persistent=False)
        self._databases = 0

    def start(self) -> None:
        self.postgres.start()
        self.redis.start()
        self.postgres.create_database(TEMPLATE_DATABASE)
        url = self.postgres.url(TEMPLATE_DATABASE)
        upgrade(url)
        asyncio.run(_seed_demo(url))

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()

    async def new_database(self) -> str:
        """A fresh database copied from the migrated, seeded template."""
        self._databases += 1
        name = f"sb_system_{os.getpid()}_{self._databases}"
        engine = create_async_engine(self.postgres.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DATABASE}"'))
        finally:
            await engine.dispose()
        return self.postgres.url(name)

    def restart_redis(self, *, down_seconds: float = 0.0) -> float:
        """Stop Redis (its data is lost: no persistence) and start it again; returns how long it was down."""
        started = time.monotonic()
        self.redis.stop()
        if down_seconds:
            time.sleep(down_seconds)
        self.redis.start()
        return time.monotonic() - started


async def _seed_demo(database_url: str) -> None:
    from salesbot.knowledge.embeddings import get_embedder
    from salesbot.knowledge.seed import seed_demo_data
    from salesbot.settings import EmbeddingSettings, Settings

    engine = create_engine(database_url, pool_size=2)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            # The processes run with EMBEDDING_MODEL=offline: the same embedder fills the catalog's vectors.
            # Said here, not left to the environment: the benchmarks import this harness without tests/conftest.py.
            settings = Settings(
                salesbot_env="test", database_url=database_url, embedding=EmbeddingSettings(model=PROCESS_EMBEDDER)
            )
            await seed_demo_data(session, get_embedder(settings))
    finally:
        await engine.dispose()


# --- processes ----------------------------------------------------------------------------------------------------


class SalesbotProcess:
    """One `salesbot serve` or `salesbot worker` subprocess (a worker serves `queues`, default all)."""

    def __init__(self, kind: str, env: dict[str, str], log_path: Path, *, queues: Sequence[str] = ()) -> None:
        if kind not in ("api", "worker"):
            raise ValueError(kind)
        self.kind = kind
        self.queues = list(queues)
        self.env = env
        self.log_path = log_path
        self.port = free_port() if kind == "api" else 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.crashes = 0
        # False while the test deliberately keeps it down (no supervisor restart).
        self.wanted = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.alive():
            return
        command = [str(SALESBOT), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.kind == "worker":
            command = [str(SALESBOT), "worker", *(["--queues", ",".join(self.queues)] if self.queues else [])]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start #{self.starts + 1} at {datetime.now(UTC).isoformat()} ===\n".encode())
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.starts += 1
        self.wanted = True

    async def ready(self, timeout: float = 60) -> float:
        """Wait until the API answers /healthz, or the worker logged its start; returns the seconds it took."""
        assert self.process is not None
        process = self.process

        async def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{self.kind} exited with {process.returncode}:\n{self.log_tail()}")
            if self.kind == "api":
                try:
                    async with httpx.AsyncClient(timeout=2) as client:
                        return (await client.get(f"{self.url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False
            return "worker.started" in self.current_log()

        return await eventually(up, what=f"{self.kind} ready", timeout=timeout, every=0.05)

    def signal(self, sig: signal.Signals, *, wait: float = 30) -> None:
        """Send `sig` to this process (by PID) and reap it; the test keeps it down until `start()`."""
        self.wanted = False
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def stop(self) -> None:
        self.signal(signal.SIGTERM, wait=20)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def current_log(self) -> str:
        """The log of the latest start only (the file holds every start's, each after its `=== start #N` line)."""
        log = self.log_text()
        return log[log.rfind(f"=== start #{self.starts} at") :]


class Supervisor:
    """Restarts processes that exit on their own (the deployment's `restart: unless-stopped`)."""

    def __init__(self, processes: list[SalesbotProcess]) -> None:
        self.processes = processes
        self.restarts: list[tuple[str, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            for process in self.processes:
                if process.wanted and process.process is not None and process.process.poll() is not None:
                    process.crashes += 1
                    self.restarts.append((process.kind, time.time()))
                    process.process = None
                    process.start()
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- messages -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """One customer message as a provider delivers it (the same object is delivered again for duplicates)."""

    channel: Channel
    chat: str  # Wazzup: digits; Twilio: whatsapp:+E164
    text: str
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def wazzup_body(self) -> bytes:
        item = {
            "messageId": self.message_id,
            "dateTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "channelId": WAZZUP_CHANNEL,
            "chatType": "whatsapp",
            "chatId": self.chat,
            "type": "text",
            "isEcho": False,
            "status": "inbound",
            "contact": {"name": "Customer"},
            "text": self.text,
        }
        return json.dumps({"messages": [item]}, ensure_ascii=False).encode()

    def twilio_params(self) -> list[tuple[str, str]]:
        sid = "SM" + uuid.uuid5(uuid.NAMESPACE_OID, self.message_id).hex
        return [
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("ProfileName", "Customer"),
            ("MessageType", "text"),
            ("SmsSid", sid),
            ("WaId", self.chat.removeprefix("whatsapp:+")),
            ("SmsStatus", "received"),
            ("Body", self.text),
            ("To", TWILIO_FROM),
            ("NumSegments", "1"),
            ("MessageSid", sid),
            ("AccountSid", TWILIO_SID),
            ("From", self.chat),
            ("ApiVersion", "2010-04-01"),
        ]

    @property
    def provider_message_id(self) -> str:
        if self.channel is Channel.TWILIO:
            return "SM" + uuid.uuid5(uuid.NAMESPACE_OID, self.message_id).hex
        return self.message_id


def letters(value: int, width: int = 4) -> str:
    """A number spelled in letters (a tag in customer text that PII masking leaves alone, unlike digits)."""
    out = ""
    for _ in range(width):
        value, digit = divmod(value, 26)
        out = chr(ord("a") + digit) + out
    return out


def chat_tag(chat: str) -> str:
    return "cust" + letters(int("".join(ch for ch in chat if ch.isdigit())[-7:]))


def wazzup_chat(index: int) -> str:
    return f"7990{index:07d}"


def twilio_chat(index: int) -> str:
    return f"whatsapp:+1415{index:07d}"


@dataclass
class Ack:
    message: Inbound
    status: int  # 0: no HTTP answer (connection refused or reset, timeout)
    sent_at: float
    acked_at: float
    error: str | None = None


class Webhooks:
    """Delivers provider webhooks to the API like Wazzup and Twilio do (Twilio requests signed).

    At most `connections` requests are in flight (a closed loop: the offered load adapts to what the server
    answers, instead of queueing without bound on a slow machine); `sent_at` is taken when a request leaves.
    """

    def __init__(self, base_url: Callable[[], str], *, connections: int = 32) -> None:
        self._base_url = base_url
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, pool=None),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._slots = asyncio.Semaphore(connections)
        self.acks: list[Ack] = []

    async def close(self) -> None:
        await self.client.aclose()

    async def deliver(self, message: Inbound) -> Ack:
        async with self._slots:
            return await self._deliver(message)

    async def _deliver(self, message: Inbound) -> Ack:
        started = time.time()
        error = None
        try:
            if message.channel is Channel.WAZZUP:
                response = await self.client.post(
                    f"{self._base_url()}/webhooks/wazzup/{WAZZUP_SECRET}",
                    content=message.wazzup_body(),
                    headers={"content-type": "application/json; charset-utf-8"},
                )
            else:
                params = message.twilio_params()
                signature = compute_signature(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio", params)
                response = await self.client.post(
                    f"{self._base_url()}/webhooks/twilio",
                    content=urlencode(params),
                    headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
                )
            status = response.status_code
        except httpx.HTTPError as exc:
            status, error = 0, type(exc).__name__
        ack = Ack(message, status, started, time.time(), error)
        self.acks.append(ack)
        return ack

    async def deliver_until_acked(self, message: Inbound, *, timeout: float = 60, pause: float = 0.5) -> Ack:
        """Redeliver until the bot answers 200, as a provider retries a failed webhook (bounded in time)."""
        deadline = time.monotonic() + timeout
        while True:
            ack = await self.deliver(message)
            if ack.status == 200 or time.monotonic() > deadline:
                return ack
            await asyncio.sleep(pause)

    async def manager_echo(self, chat: str, text: str) -> int:
        """A manager wrote from the Wazzup inbox: `isEcho: true` with an id the bot never sent."""
        item = {
            "messageId": str(uuid.uuid4()),
            "dateTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "channelId": WAZZUP_CHANNEL,
            "chatType": "whatsapp",
            "chatId": chat,
            "type": "text",
            "isEcho": True,
            "status": "sent",
            "text": text,
            "authorName": "Anna",
            "authorId": "crm-user-17",
            "sentFromApp": True,
            "contact": {"name": "Customer"},
        }
        url = f"{self._base_url()}/webhooks/wazzup/{WAZZUP_SECRET}"
        response = await self.client.post(url, json={"messages": [item]})
        return response.status_code


# --- what the providers received ---------------------------------------------------------------------------------


class SentIndex:
    """Both fake providers' accepted sends, indexed by chat (incrementally: the lists only grow)."""

    def __init__(self, wazzup: FakeWazzupApi, twilio: FakeTwilioApi) -> None:
        self._sources = [wazzup.sent, twilio.sent]
        self._seen = [0, 0]
        self.by_chat: dict[str, list[Sent]] = defaultdict(list)

    def refresh(self) -> dict[str, list[Sent]]:
        for index, source in enumerate(self._sources):
            new = source[self._seen[index] : len(source)]
            self._seen[index] += len(new)
            for sent in new:
                self.by_chat[sent.chat_id].append(sent)
        return self.by_chat

    def count(self, chat: str) -> int:
        return len(self.refresh().get(chat, []))

    def total(self) -> int:
        return sum(len(items) for items in self.refresh().values())


# --- the database, read back ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    conversation_id: int
    direction: Direction
    author: Author
    text: str
    provider_message_id: str | None
    delivery_status: DeliveryStatus | None
    processed_at: datetime | None
    in_reply_to_id: int | None
    model: str | None
    fallback_used: bool
    error: str | None
    created_at: datetime


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size=4)

    async def close(self) -> None:
        await self.engine.dispose()

    async def rows(self) -> list[Row]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(
                    Message.id,
                    Message.conversation_id,
                    Message.direction,
                    Message.author,
                    Message.text,
                    Message.provider_message_id,
                    Message.delivery_status,
                    Message.processed_at,
                    Message.in_reply_to_id,
                    Message.model,
                    Message.fallback_used,
                    Message.error,
                    Message.created_at,
                ).order_by(Message.id)
            )
            return [Row(*row) for row in result.all()]

    async def chats(self) -> dict[int, str]:
        """conversation id -> the customer's chat id."""
        from salesbot.models import Customer

        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(Conversation.id, Customer.chat_id).join(Customer, Customer.id == Conversation.customer_id)
            )
            return {int(conversation_id): str(chat) for conversation_id, chat in result.all()}

    async def conversations(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            result = await connection.execute(select(Conversation.__table__))
            return [dict(row._mapping) for row in result.all()]

    async def unfinished(self) -> tuple[int, int]:
        """(customer messages no turn consumed, outbound messages still pending)."""
        async with self.engine.connect() as connection:
            unprocessed = await connection.scalar(
                select(func.count()).where(Message.direction == Direction.INBOUND, Message.processed_at.is_(None))
            )
            pending = await connection.scalar(
                select(func.count()).where(
                    Message.direction == Direction.OUTBOUND, Message.delivery_status == DeliveryStatus.PENDING
                )
            )
            return int(unprocessed or 0), int(pending or 0)

    async def scalar(self, query: Any) -> Any:
        async with self.engine.connect() as connection:
            return await connection.scalar(query)


# --- one test's world -----------------------------------------------------------------------------------------------


@dataclass
class SystemConfig:
    """Environment knobs of a scenario (all passed to the processes as environment variables)."""

    debounce_seconds: float = 1.0
    debounce_max_seconds: float = 4.0
    job_timeout_seconds: float = 20.0
    llm_model: str = "offline"
    llm_fallbacks: tuple[str, ...] = ()
    llm_timeout_seconds: float = 5.0
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 2.0
    max_send_attempts: int = 20
    # EMBEDDING_MODEL of the processes. Another model than the template's is applied to the scenario's database
    # with `salesbot reindex` (columns resized, catalog re-embedded) before anything starts.
    embedding_model: str = PROCESS_EMBEDDER
    extra_env: dict[str, str] = field(default_factory=dict)


class System:
    def __init__(self, services: Services, workdir: Path, config: SystemConfig) -> None:
        self.services = services
        self.workdir = workdir
        self.config = config
        self.wazzup_api = FakeWazzupApi(WAZZUP_KEY)
        self.twilio_api = FakeTwilioApi(TWILIO_SID, TWILIO_TOKEN)
        self.provider = FakeProviderServer(self.wazzup_api, self.twilio_api)
        self.llm = FakeLLM()
        self.sent = SentIndex(self.wazzup_api, self.twilio_api)
        self.processes: list[SalesbotProcess] = []
        self.supervisor = Supervisor(self.processes)
        self.database: Database | None = None
        self.webhooks = Webhooks(lambda: self.api.url)
        self._exit = contextlib.ExitStack()

    # lifecycle ------------------------------------------------------------------------------------------------
    async def open(self) -> None:
        url = await self.services.new_database()
        self.database = Database(url)
        if self.config.embedding_model != PROCESS_EMBEDDER:
            await self._reindex()
        self._exit.enter_context(self.provider.in_thread())
        self._exit.enter_context(self.llm.in_thread())
        await self.flush_redis()
        self.supervisor.start()

    async def _reindex(self) -> None:
        """The scenario's database as `salesbot reindex` leaves it for `config.embedding_model`."""
        reindex = await asyncio.create_subprocess_exec(
            str(SALESBOT),
            "reindex",
            cwd=ROOT,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await reindex.communicate()
        if reindex.returncode != 0:
            said = output.decode(errors="replace")
            raise AssertionError(f"salesbot reindex exited with {reindex.returncode}:\n{said}")

    async def close(self) -> None:
        await self.supervisor.stop()
        for process in self.processes:
            process.stop()
        await self.webhooks.close()
        self._exit.close()
        if self.database is not None:
            await self.database.close()

    async def flush_redis(self) -> None:
        from redis.asyncio import Redis

        client = Redis(unix_socket_path=str(self.services.redis.socket_path))
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def env(self) -> dict[str, str]:
        assert self.database is not None
        config = self.config
        env = {
            **os.environ,
            "SALESBOT_ENV_FILE": "",
            "SALESBOT_ENV": "test",
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": self.database.url,
            "REDIS_URL": self.services.redis.url,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "CONSOLE_ENABLED": "false",
            "WAZZUP_API_URL": self.provider.wazzup_url,
            "WAZZUP_API_KEY": WAZZUP_KEY,
            "WAZZUP_CHANNEL_ID": WAZZUP_CHANNEL,
            "WAZZUP_WEBHOOK_SECRET": WAZZUP_SECRET,
            "TWILIO_API_URL": self.provider.twilio_url,
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_WHATSAPP_FROM": TWILIO_FROM,
            "LLM_MODEL": config.llm_model,
            "LLM_BASE_URL": self.llm.base_url,
            "LLM_API_KEY": LLM_KEY,
            "LLM_FALLBACK_MODELS": ",".join(config.llm_fallbacks),
            "LLM_REQUEST_TIMEOUT_SECONDS": str(config.llm_timeout_seconds),
            "EMBEDDING_MODEL": config.embedding_model,
            "DEBOUNCE_SECONDS": str(config.debounce_seconds),
            "DEBOUNCE_MAX_SECONDS": str(config.debounce_max_seconds),
            "WORKER_JOB_TIMEOUT_SECONDS": str(config.job_timeout_seconds),
            "OUTBOX_PACING_SECONDS": "0",
            "OUTBOX_RETRY_BASE_SECONDS": str(config.retry_base_seconds),
            "OUTBOX_RETRY_MAX_SECONDS": str(config.retry_max_seconds),
            "OUTBOX_MAX_SEND_ATTEMPTS": str(config.max_send_attempts),
            "API_TOKEN": API_TOKEN,
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SECRET_KEY": SECRET_KEY,
            "HF_HUB_OFFLINE": "1",
        }
        env.update(config.extra_env)
        return env

    @property
    def db(self) -> Database:
        assert self.database is not None
        return self.database

    @property
    def api(self) -> SalesbotProcess:
        return next(p for p in self.processes if p.kind == "api")

    @property
    def apis(self) -> list[SalesbotProcess]:
        return [p for p in self.processes if p.kind == "api"]

    @property
    def workers(self) -> list[SalesbotProcess]:
        return [p for p in self.processes if p.kind == "worker"]

    async def start(
        self,
        *,
        workers: int = 1,
        api: bool = True,
        apis: int = 1,
        queues: Sequence[Sequence[str]] = (),
        timeout: float = 180,
    ) -> None:
        """Start `apis` API processes (scale-out: all behind the same PostgreSQL and Redis) and `workers` worker
        processes; `queues[i]` limits worker i to those queues (`salesbot worker --queues`, for scale-out layouts)."""
        env = self.env()
        if api:
            self.processes.append(SalesbotProcess("api", env, self.workdir / "api.log"))
            # Scale-out: more API processes behind the same PostgreSQL and Redis (`System.apis`).
            for index in range(1, apis):
                self.processes.append(SalesbotProcess("api", env, self.workdir / f"api-{index + 1}.log"))
        for index in range(workers):
            chosen = queues[index] if index < len(queues) else ()
            log = self.workdir / f"worker-{index + 1}.log"
            self.processes.append(SalesbotProcess("worker", env, log, queues=chosen))
        for process in self.processes:
            process.start()
        await asyncio.gather(*(process.ready(timeout) for process in self.processes))

    def logs(self) -> str:
        return "\n".join(process.log_text() for process in self.processes)

    # waiting ----------------------------------------------------------------------------------------------------
    async def settled(self, *, timeout: float, what: str = "every message answered and every reply sent") -> float:
        """Wait until no customer message is unprocessed and no reply is pending (twice in a row)."""
        streak = 0

        async def done() -> bool:
            nonlocal streak
            streak = streak + 1 if await self.db.unfinished() == (0, 0) else 0
            return streak >= 3

        return await eventually(done, what=what, timeout=timeout, every=0.25)

    async def replies_reached(self, expected: dict[str, int], *, timeout: float) -> float:
        """Wait until each chat received at least `expected[chat]` messages at the fake providers."""

        async def reached() -> bool:
            by_chat = self.sent.refresh()
            return all(len(by_chat.get(chat, [])) >= count for chat, count in expected.items())

        try:
            return await eventually(reached, what="replies at the providers", timeout=timeout, every=0.1)
        except AssertionError as error:
            by_chat = self.sent.refresh()
            missing = {
                chat_tag(c): (len(by_chat.get(c, [])), n) for c, n in expected.items() if len(by_chat.get(c, [])) < n
            }
            raise AssertionError(f"{error}; (sent, expected) by chat: {missing}; {self.diagnosis()}") from None

    def diagnosis(self) -> str:
        """What the processes' logs say about turns that ended without the agent's answer."""
        logs = self.logs()
        counts = {event: logs.count(event) for event in DIAGNOSTIC_EVENTS if event in logs}
        return f"log events: {counts or 'none of ' + ', '.join(DIAGNOSTIC_EVENTS)}"

    # assertions helpers --------------------------------------------------------------------------------------------
    async def inbound_counts(self) -> dict[str, int]:
        """provider message id -> stored customer rows with it."""
        counts: dict[str, int] = defaultdict(int)
        for row in await self.db.rows():
            if row.direction is Direction.INBOUND and row.provider_message_id:
                counts[row.provider_message_id] += 1
        return counts


def percentile(values: Iterable[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.asynccontextmanager
async def opened_system(services: Services, workdir: Path, config: SystemConfig) -> AsyncIterator[System]:
    system = System(services, workdir, config)
    await system.open()
    try:
        yield system
    finally:
        await system.close()


@dataclass(frozen=True)
class TurnCheck:
    """What `check_every_turn_answered` found."""

    customer_messages: int
    turns: int
    reply_messages: int
    sends: int


async def check_every_turn_answered(system: System, *, expect_ids: Iterable[str] | None = None) -> TurnCheck:
    """The end state every scenario must reach, asserted:

    - each customer message is stored exactly once (and, with `expect_ids`, exactly those messages are);
    - each one was consumed by a turn; each turn (the messages consumed together) has exactly one reply
      (one or more parts, written by the bot or as a system handoff message) and every part left;
    - the providers received exactly the parts the database recorded, per chat: no duplicate, no loss.
    """
    rows = await system.db.rows()
    inbound = [row for row in rows if row.direction is Direction.INBOUND]
    ids = Counter(row.provider_message_id for row in inbound)
    assert set(ids.values()) <= {1}, f"stored twice: {[key for key, n in ids.items() if n > 1][:5]}"
    if expect_ids is not None:
        assert set(ids) == set(expect_ids)
    assert all(row.processed_at is not None for row in inbound), "a customer message was never consumed"
    turns: dict[tuple[int, datetime | None], list[Row]] = defaultdict(list)
    for row in inbound:
        turns[(row.conversation_id, row.processed_at)].append(row)
    parts: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        if row.direction is Direction.OUTBOUND and row.author in (Author.BOT, Author.SYSTEM) and row.in_reply_to_id:
            parts[row.in_reply_to_id].append(row)
    chat_of = await system.db.chats()
    expected: Counter[str] = Counter()
    for group in turns.values():
        last = max(row.id for row in group)
        reply = parts.get(last, [])
        assert reply, f"turn ending with message {last} has no reply"
        assert all(part.delivery_status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED) for part in reply), reply
        expected[chat_of[group[0].conversation_id]] += len(reply)
    answered_ids = {row.in_reply_to_id for group in parts.values() for row in group}
    assert answered_ids <= {max(row.id for row in group) for group in turns.values()}, "a reply to no turn"
    by_chat = system.sent.refresh()
    assert {chat: len(items) for chat, items in by_chat.items()} == dict(expected)
    return TurnCheck(
        customer_messages=len(inbound),
        turns=len(turns),
        reply_messages=sum(len(reply) for reply in parts.values()),
        sends=sum(len(items) for items in by_chat.values()),
    )


SECRETS = {
    "WAZZUP_WEBHOOK_SECRET": WAZZUP_SECRET,
    "WAZZUP_API_KEY": WAZZUP_KEY,
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "API_TOKEN": API_TOKEN,
    "SECRET_KEY": SECRET_KEY,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "LLM_API_KEY": LLM_KEY,
}


def check_logs_clean(system: System, *, contacts: Iterable[str]) -> int:
    """No secret and none of `contacts` (phone numbers, chat ids, e-mail addresses) in any process's log.

    Returns the number of log lines searched."""
    logs = system.logs()
    assert [name for name, value in SECRETS.items() if value in logs] == []
    found = sorted({value for value in contacts if value and value in logs})
    assert found == [], f"contact details in the logs: {found[:5]}"
    return logs.count("\n")


async def write_as_customer(
    system: System, chat: str, channel: Channel, questions: Sequence[str], messages: int, rng: random.Random
) -> list[Ack]:
    """A customer writing `messages` messages about a second apart, redelivering a webhook until it is acknowledged
    (what a provider does while the API is down)."""
    acks: list[Ack] = []
    await asyncio.sleep(rng.uniform(0, 1.5))
    for index in range(messages):
        message = Inbound(channel, chat, f"{questions[index % len(questions)]} ({chat_tag(chat)} {letters(index, 2)})")
        first = await system.webhooks.deliver(message)
        acks.append(first)
        if first.status != 200:
            acks.append(await system.webhooks.deliver_until_acked(message, timeout=90, pause=rng.uniform(0.5, 1.5)))
        await asyncio.sleep(rng.uniform(0.4, 1.6))
    return acks
