"""Group commit for the webhook inbox: concurrent webhooks share one transaction, one commit, one Redis round trip.

A webhook is durable only once its transaction committed, and a commit waits for the disk: one transaction per
webhook caps the inbox at a few hundred webhooks a second, most of it spent in round trips and fsyncs rather
than work. So each API process hands its verified, parsed webhooks to one `InboxBatcher`, which collects those
that arrive within `WAIT_SECONDS` of the first (or while the previous batch is being written, up to `MAX_WEBHOOKS`),
writes them with `service.accept_many` and only then answers each waiting request. The guarantee is the one of a
single webhook: no request returns before its events are committed.

A batch fails as its webhooks would alone:
- the database is unreachable: every request gets the error, and each spools its own events (`spool.accept`);
- anything else (a bad event, a deadlock with another process's batch): nothing was committed, so each webhook is
  retried in a transaction of its own, and only the one that fails by itself gets its error.

Batches run one at a time, in arrival order, so the messages of one chat are stored in the order they arrived.
No background task lives much longer than the work: the first webhook to find the batcher idle starts one, and it
ends when the queue has stayed empty for `linger_seconds` (the API's batcher: `LINGER_SECONDS`; closed with the
app). While it lives it keeps one database connection for its batches: taking one from the pool costs a liveness
check of three round trips (`pool_pre_ping`), and at a moderate rate (a few hundred webhooks a second, each batch
written before the next webhook arrives) a batcher that gave its connection back whenever the queue emptied paid
that check for nearly every webhook: a good part of the database time and CPU of a webhook. A batch that fails
gives its connection back (a broken one is discarded) and the next batch takes a fresh, checked one; a batch that
fails because the connection it kept through a quiet moment is gone (the server restarted meanwhile) is tried
once more on a fresh one before its webhooks are spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from salesbot.inbox import service
from salesbot.kit.db_errors import database_unreachable
from salesbot.kit.logging import get_logger
from salesbot.messaging.base import InboundEvent
from salesbot.resources import Resources

log = get_logger(__name__)

# How long a batch waits for company after its first webhook: a few milliseconds of latency buy a shared commit.
WAIT_SECONDS = 0.002
# Webhooks per transaction: bounds the statement size and the work a failed batch has to redo one by one.
MAX_WEBHOOKS = 64
# How long the API's batcher keeps its task and connection through a quiet moment: a few hundred milliseconds cover
# the gaps of any steady traffic, and a connection idle this briefly almost never needs the pool's liveness check.
LINGER_SECONDS = 0.5


@dataclass(frozen=True)
class _Waiting:
    events: Sequence[InboundEvent]
    answer: asyncio.Future[service.InboxResult]


class InboxBatcher:
    """`service.accept` with group commit (one per API process and set of resources)."""

    def __init__(
        self,
        resources: Resources,
        *,
        wait_seconds: float = WAIT_SECONDS,
        max_webhooks: int = MAX_WEBHOOKS,
        linger_seconds: float = 0.0,
    ) -> None:
        """`linger_seconds`: how long the task and its connection wait for more webhooks once the queue is empty
        (0: they end at once). A batcher that lingers must be `close`d before its engine is disposed."""
        self.resources = resources
        self.wait_seconds = wait_seconds
        self.max_webhooks = max_webhooks
        self.linger_seconds = linger_seconds
        self._queue: deque[_Waiting] = deque()
        self._task: asyncio.Task[None] | None = None
        self._full = asyncio.Event()  # a whole batch is waiting: stop waiting for company
        self._arrived = asyncio.Event()  # a webhook joined the queue: stop lingering
        self._closed = False
        self._connection: AsyncConnection | None = None  # held while the batches keep coming
        self._connection_idled = False  # the held connection waited through a quiet moment since its last batch

    async def accept(self, events: Sequence[InboundEvent]) -> service.InboxResult:
        """What `service.accept(resources, events)` returns or raises, committed together with other webhooks."""
        answer: asyncio.Future[service.InboxResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(events, answer))
        self._arrived.set()
        if len(self._queue) >= self.max_webhooks:
            self._full.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox.batcher")
        # Cancelled (the spool's deadline): the batch may still commit these events; a spooled copy is then a
        # duplicate when drained.
        return await answer

    async def close(self) -> None:
        """Stop lingering and give the connection back (the app's shutdown); webhooks already queued are written."""
        self._closed = True
        self._arrived.set()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _more(self) -> bool:
        """Whether there is a webhook to write, after lingering up to `linger_seconds` for one."""
        if self._queue:
            return True
        if self.linger_seconds <= 0 or self._closed:
            return False
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.linger_seconds):
                await self._arrived.wait()
        self._connection_idled = self._connection is not None
        return bool(self._queue)

    async def _run(self) -> None:
        try:
            while await self._more():
                if len(self._queue) < self.max_webhooks and self.wait_seconds > 0:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.wait_seconds):
                            await self._full.wait()
                batch: list[_Waiting] = []
                while self._queue and len(batch) < self.max_webhooks:
                    waiting = self._queue.popleft()
                    if not waiting.answer.done():  # its request gave up (and spooled or failed) meanwhile
                        batch.append(waiting)
                if batch:
                    await self._write(batch)
        finally:
            self._task = None
            for waiting in self._queue:  # only when cancelled (the event loop is closing)
                waiting.answer.cancel()
            await self._release()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.close()
        except Exception as exc:
            # The pool discards a connection it cannot reset; the waiting requests must still get their answers.
            log.warning("inbox.connection_release_failed", error=type(exc).__name__)

    async def _write(self, batch: list[_Waiting]) -> None:
        idled, self._connection_idled = self._connection_idled and self._connection is not None, False
        try:
            try:
                results = await self._accept_many(batch)
            except Exception as exc:
                if not (idled and database_unreachable(exc)):
                    raise
                # The connection kept through a quiet moment is gone (the server restarted, a proxy timed it out):
                # nothing was committed, so the batch goes once more on a fresh connection that the pool checks.
                log.warning("inbox.kept_connection_lost", error=type(exc).__name__)
                await self._release()
                results = await self._accept_many(batch)
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.answer.cancel()
            raise
        except Exception as exc:
            await self._release()
            if len(batch) == 1 or database_unreachable(exc):
                for waiting in batch:
                    _fail(waiting, exc)
                return
            log.warning("inbox.batch_failed", webhooks=len(batch), error=type(exc).__name__)
            await self._write_one_by_one(batch)
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(result)

    async def _accept_many(self, batch: list[_Waiting]) -> list[service.InboxResult]:
        if self._connection is None:
            self._connection = await self.resources.engine.connect()
        return await service.accept_many(
            self.resources, [waiting.events for waiting in batch], connection=self._connection
        )

    async def _write_one_by_one(self, batch: list[_Waiting]) -> None:
        for waiting in batch:
            try:
                result = await service.accept(self.resources, waiting.events)
            except asyncio.CancelledError:
                for rest in batch:
                    rest.answer.cancel()
                raise
            except Exception as exc:
                _fail(waiting, exc)
            else:
                if not waiting.answer.done():
                    waiting.answer.set_result(result)


def _fail(waiting: _Waiting, exc: Exception) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(exc)
