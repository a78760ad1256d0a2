"""The worker process: wake on NOTIFY (or the slow poll), lease work units up to the
concurrency limit, drain each in order, heartbeat the leases, shut down gently.

    honcho-grpc worker                 run until SIGINT/SIGTERM
    honcho-grpc worker --retry-failed  put failed rows back in the queue and exit
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import psycopg

from honcho_grpc import telemetry
from honcho_grpc.db.pool import UNAVAILABLE, create_pool
from honcho_grpc.domain import queue as domain_queue
from honcho_grpc.providers.embeddings import Embedder, EmbeddingDimensionError, EmbeddingError
from honcho_grpc.providers.llm import LLMError
from honcho_grpc.settings import Settings
from honcho_grpc.store import backlog, idempotency
from honcho_grpc.store.queue import transport
from honcho_grpc.work_units import TaskType, kind_of, session_of
from honcho_grpc.worker.db import Pool, connect, make_pool, resolve_dsn
from honcho_grpc.worker.health import WorkerHealth
from honcho_grpc.worker.queue import Job, LeaseLost, Queue, Unit, retry_failed
from honcho_grpc.worker.reasoning import ReasoningError
from honcho_grpc.worker.tasks import (
    Handler,
    PermanentError,
    Reasoning,
    TaskContext,
    TransientError,
    default_handlers,
)

log = logging.getLogger(__name__)
# How often a worker giving way to the embedding backlog looks whether it has emptied.
GIVE_WAY_POLL_SECONDS = 0.25

# A lost or restarting database, through either driver: waited out, never a task's failure.
DB_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError,
                                              *UNAVAILABLE)


class BacklogGlance:
    """Whether messages wait for their embedding, asked of the database at most every
    `fresh_for` seconds however many units ask (each asks before each of its batches)."""

    def __init__(self, fresh_for: float = GIVE_WAY_POLL_SECONDS) -> None:
        self.fresh_for = fresh_for
        self._lock = asyncio.Lock()
        self._asked_at = -fresh_for
        self._waiting = False

    async def any_due(self, db: asyncpg.Pool) -> bool:
        async with self._lock:  # callers arriving meanwhile share the one query
            if time.monotonic() - self._asked_at >= self.fresh_for:
                self._waiting = await backlog.any_due(db)
                self._asked_at = time.monotonic()
            return self._waiting


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Stats:
    batches: int = 0
    jobs: int = 0
    failures: int = 0


class Worker:
    def __init__(self, settings: Settings, dsn: str, *,
                 handlers: dict[str, Handler] | None = None, reasoner: Reasoning | None = None,
                 embedder: Embedder | None = None, worker_id: str | None = None) -> None:
        self.settings = settings
        self.dsn = dsn
        self.handlers = handlers if handlers is not None else default_handlers()
        self.worker_id = worker_id or settings.queue.worker_id or default_worker_id()
        self._reasoner = reasoner
        self._embedder = embedder
        # The queue transport's connections (psycopg); the store's pool (asyncpg), for the
        # tasks' reads and writes and the fenced completion, is opened by `run` (TaskContext).
        self.pool: Pool = make_pool(dsn, settings.queue.pool_max_size)
        self.queue = Queue(self.pool, settings.queue, self.worker_id)
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.units: dict[Unit, asyncio.Task[None]] = {}
        self.releasing: set[Unit] = set()  # done with, giving their lease back
        self.stats = Stats()
        self.ctx: TaskContext | None = None
        self.backlog = BacklogGlance()

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Work until `stop()`; then finish (or hand back) running units and release."""
        from honcho_grpc.providers.embeddings import check_dimensions

        embedder = self._build_embedder()
        await check_dimensions(embedder, self.settings.embedding.dimensions)
        await self.pool.open(wait=True, timeout=60)
        try:
            db = await create_pool(self.dsn, self.settings, min_size=1,
                                   max_size=self.settings.queue.pool_max_size)
        except BaseException:
            await self.pool.close()
            raise
        self.ctx = TaskContext(db, self.settings, self._build_reasoner(), embedder)
        loops = [asyncio.create_task(coro) for coro in
                 (self._listen(), self._heartbeat(), self._housekeeping())]
        if telemetry.active().enabled:
            await self._sample_depth()  # the backlog found at start, before any is claimed
            loops.append(asyncio.create_task(self._depth_loop()))
        dispatcher = asyncio.create_task(self._dispatch())
        log.info("worker %s started", self.worker_id)
        if ready is not None:
            ready()
        try:
            await self.stopping.wait()
        finally:
            await _cancel(dispatcher)
            await self._finish_units()
            for task in loops:
                await _cancel(task)
            with contextlib.suppress(*DB_ERRORS, psycopg.Error):
                await self.queue.release_all()
            await self.pool.close()
            await db.close()
            log.info("worker %s stopped", self.worker_id)

    def _build_reasoner(self) -> Reasoning:
        if self._reasoner is None:
            from honcho_grpc.worker.reasoning import Reasoner

            self._reasoner = Reasoner.from_settings(self.settings)
        return self._reasoner

    def _build_embedder(self) -> Embedder:
        if self._embedder is None:
            from honcho_grpc.providers.embeddings import build_embedder

            self._embedder = build_embedder(self.settings.embedding)
        return self._embedder

    async def _finish_units(self) -> None:
        """Let running units end their current batch, then cancel (they hand rows back)."""
        running = list(self.units.values())
        if running:
            _, pending = await asyncio.wait(
                running, timeout=self.settings.queue.shutdown_grace_seconds)
            for task in pending:
                await _cancel(task)

    # -- loops ---------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            delay = self.settings.queue.poll_seconds
            try:
                await self._fill()
                if len(self.units) < self.settings.queue.concurrency:
                    due = await self.queue.seconds_until_due()
                    if due is not None:
                        delay = min(delay, due + 0.01)
            except DB_ERRORS as exc:
                log.warning("worker %s: database unavailable (%s)", self.worker_id,
                            type(exc).__name__)
                delay = min(delay, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    async def _fill(self) -> None:
        while len(self.units) < self.settings.queue.concurrency and not self.stopping.is_set():
            unit = await self.queue.claim()
            if unit is None:
                return
            joined = asyncio.Event()
            task = asyncio.create_task(self._run_unit(unit, joined))
            self.units[unit] = task
            task.add_done_callback(functools.partial(self._unit_done, unit))
            if session_of(unit.work_unit_key) is not None:
                # Let it lease the other speakers' units of its stretch before claiming on:
                # claimed here, they would be extracted in calls of their own.
                waiter = asyncio.create_task(joined.wait())
                await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()

    def _unit_done(self, unit: Unit, task: asyncio.Task[None]) -> None:
        # The unit may have been claimed anew once its lease was given back.
        if self.units.get(unit) is task:
            del self.units[unit]
        self.releasing.discard(unit)
        self.wake.set()  # a slot is free, and the unit may have gained rows meanwhile

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection; reconnect with backoff when it breaks."""
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                async with await connect(self.dsn) as conn:
                    await transport.listen(conn)
                    self.wake.set()  # notifications may have been missed while away
                    backoff = 0.2
                    while not self.stopping.is_set():
                        async for _ in conn.notifies(timeout=self.settings.queue.poll_seconds):
                            self.wake.set()
                        await transport.ping(conn)  # notice a dead server while idle
            except DB_ERRORS as exc:
                log.warning("worker %s: listener lost (%s)", self.worker_id, type(exc).__name__)
                await _sleep_unless(self.stopping, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _heartbeat(self) -> None:
        while not self.stopping.is_set() or self.units:
            await asyncio.sleep(self.settings.queue.heartbeat_seconds)
            # Only units claimed before the query: a claim racing it is not visible to it.
            known = dict(self.units)
            try:
                held = await self.queue.heartbeat()
            except DB_ERRORS as exc:
                log.warning("worker %s: heartbeat failed (%s)", self.worker_id,
                            type(exc).__name__)
                continue
            for unit, task in known.items():
                # A unit released while the query ran is not held, and not lost either.
                if unit not in held and not task.done() and unit not in self.releasing:
                    log.warning("worker %s lost the lease of %s", self.worker_id,
                                unit.work_unit_key)
                    task.cancel()

    async def _housekeeping(self) -> None:
        while not self.stopping.is_set():
            try:
                removed = await self.queue.housekeeping()
                if removed:
                    log.info("removed %d completed queue rows", removed)
                expired = await idempotency.purge_expired(
                    self.ctx.db, self.settings.app.idempotency_retention_hours) \
                    if self.ctx is not None else 0
                if expired:
                    log.info("removed %d expired idempotency keys", expired)
            except DB_ERRORS as exc:
                log.warning("housekeeping failed (%s)", type(exc).__name__)
            await _sleep_unless(self.stopping, self.settings.queue.housekeeping_seconds)

    async def _depth_loop(self) -> None:
        while True:
            await _sleep_unless(self.stopping, self.settings.telemetry.metric_interval_seconds)
            if self.stopping.is_set():
                return
            await self._sample_depth()

    async def _sample_depth(self) -> None:
        """Queue depth for the metrics (every known task type, 0 included, so a drained
        queue reads 0 rather than its last backlog)."""
        try:
            pending = await self.queue.pending_by_type()
        except DB_ERRORS as exc:
            log.warning("queue depth not sampled (%s)", type(exc).__name__)
            return
        telemetry.record_queue_depth({t: pending.get(t, 0) for t in {*self.handlers, *pending}})

    # -- one unit ------------------------------------------------------------------------

    async def _run_unit(self, unit: Unit, joined: asyncio.Event | None = None) -> None:
        ran: set[str] = set()
        kept: set[Unit] = set()  # other speakers' units leased to join this one's stretches
        worked: set[Unit] = set()  # those of them whose rows were run
        try:
            while not self.stopping.is_set():
                await self._give_way_to_embedding(unit)
                head = await self.queue.next_batch(unit)
                if head.abandoned:
                    await self.queue.fail(unit, head.abandoned, "abandoned: the worker running "
                                          "it stopped every time", final=True)
                if not head.batch:
                    if head.abandoned:
                        continue
                    break
                ran.add(head.batch[0].task_type)
                others = await self.queue.join_stretch(unit, head.batch, kept)
                worked.update(u for u, _ in others)
                if joined is not None:
                    joined.set()
                if not await self._run_batch(unit, head.batch, others):
                    break
        except LeaseLost:
            log.warning("worker %s: lease of %s taken over", self.worker_id, unit.work_unit_key)
        except DB_ERRORS as exc:
            log.warning("worker %s: database error in %s (%s)", self.worker_id,
                        unit.work_unit_key, type(exc).__name__)
        finally:
            if joined is not None:
                joined.set()
            for other in sorted(kept, key=lambda u: u.work_unit_key):
                with contextlib.suppress(*DB_ERRORS, psycopg.Error, asyncpg.PostgresError,
                                         asyncio.CancelledError):
                    await asyncio.shield(self._release(
                        other, ran if other in worked else set(), joined=True))
            with contextlib.suppress(*DB_ERRORS, psycopg.Error, asyncpg.PostgresError,
                                     asyncio.CancelledError):
                await asyncio.shield(self._release(unit, ran))

    async def _give_way_to_embedding(self, unit: Unit) -> None:
        """With queue.yield_to_embedding_seconds: before a batch, wait while messages wait
        for their embedding, at most that long (derivation still moves under a stream that
        never lets the backlog empty). Webhook deliveries go at once."""
        limit = self.settings.queue.yield_to_embedding_seconds
        if limit <= 0 or kind_of(unit.work_unit_key) == TaskType.WEBHOOK:
            return
        assert self.ctx is not None
        deadline = time.monotonic() + limit
        while not self.stopping.is_set() and await self.backlog.any_due(self.ctx.db):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await _sleep_unless(self.stopping, min(GIVE_WAY_POLL_SECONDS, left))

    async def _run_batch(self, unit: Unit, jobs: list[Job],
                         joined: list[tuple[Unit, list[Job]]] | None = None) -> bool:
        """Run one batch (with the rows of other units joined to it: one task over all of
        them, completed together); True when the unit may go on to its next rows."""
        parts = [(unit, jobs), *(joined or [])]
        await self.queue.start(unit, jobs)
        for other, rows in parts[1:]:
            await self.queue.start(other, rows)
        everything = [j for _, rows in parts for j in rows]
        handler = self.handlers.get(jobs[0].task_type)
        try:
            if handler is None:
                raise PermanentError(f"no handler for task type {jobs[0].task_type!r}")
            await self._execute(parts, everything, handler)
        except LeaseLost:
            raise
        except DB_ERRORS:
            raise
        except asyncio.CancelledError:
            if self.stopping.is_set():
                with contextlib.suppress(Exception):
                    for u, rows in parts:
                        await asyncio.shield(self.queue.requeue(u, rows))
            raise
        except Exception as exc:  # any handler failure is retried, never dropped
            for other, rows in parts[1:]:
                with contextlib.suppress(LeaseLost):
                    await self._failed(other, rows, exc)
            return await self._failed(unit, jobs, exc)
        self.stats.batches += 1
        self.stats.jobs += len(everything)
        return True

    async def _execute(self, parts: list[tuple[Unit, list[Job]]], jobs: list[Job],
                       handler: Handler) -> None:
        assert self.ctx is not None
        unit = parts[0][0]
        task_type = jobs[0].task_type
        with telemetry.task_span(task_type, unit.workspace_id, unit.work_unit_key,
                                 [j.trace_context for j in jobs], [j.created_at for j in jobs]):
            result = await handler(self.ctx, jobs)
            await domain_queue.complete(self.ctx.db, unit.workspace_id,
                                        [u.work_unit_key for u, _ in parts], self.worker_id,
                                        [j.id for j in jobs], result.usage.as_json(),
                                        result.apply)
            telemetry.record_tokens(task_type, result.usage.input_tokens,
                                    result.usage.output_tokens)

    async def _failed(self, unit: Unit, jobs: list[Job], exc: Exception) -> bool:
        self.stats.failures += 1
        final = isinstance(exc, PermanentError)
        # One line with what went wrong; a failure of a kind no task expects (a bug, an
        # unknown fault) gets its traceback too.
        log.warning("worker %s: %s task failed (%s), attempt %d", self.worker_id,
                    jobs[0].task_type, failure_text(exc), jobs[0].attempts,
                    exc_info=None if isinstance(exc, EXPECTED_ERRORS) else exc)
        statuses = await self.queue.fail(unit, jobs, f"{type(exc).__name__}: {exc}",
                                         final=final)
        # Parked rows no longer hold the unit up; rows backing off do (order is kept).
        return all(s == "failed" for s in statuses.values())

    async def _release(self, unit: Unit, ran: set[str], *, joined: bool = False) -> None:
        """Drop the lease; a unit this worker drained (it ran something) is announced. A
        unit `joined` to another's stretch has no task of its own."""
        if not joined:
            self.releasing.add(unit)  # until the unit's task is done (_unit_done)
        if await self.queue.release(unit) and ran and self.ctx is not None:
            await domain_queue.announce_drained(self.ctx.db, unit.workspace_id,
                                                unit.work_unit_key)


# What a task fails with in the ordinary course: a provider down or refusing, an answer the
# model cut or garbled, a payload or URL refused, a remote end that did not answer.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    LLMError, ReasoningError, PermanentError, TransientError, EmbeddingDimensionError,
    EmbeddingError)
MAX_LOGGED_ERROR_CHARS = 500


def failure_text(exc: BaseException) -> str:
    """`Class: message` on one line, at most MAX_LOGGED_ERROR_CHARS of the message."""
    message = " ".join(str(exc).split())
    if len(message) > MAX_LOGGED_ERROR_CHARS:
        message = message[:MAX_LOGGED_ERROR_CHARS] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


# -- process entry points ---------------------------------------------------------------------

async def ensure_schema(dsn: str) -> None:
    """Apply pending migrations (serialised by an advisory lock with servers doing the same)."""
    import asyncpg

    from honcho_grpc.db.pool import apply_migrations

    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


async def main(settings: Settings, *, on_ready: Callable[[], Awaitable[None]] | None = None
               ) -> None:
    """`honcho-grpc worker`: run until SIGINT/SIGTERM."""
    dsn = resolve_dsn(settings)
    await ensure_schema(dsn)
    otel = telemetry.configure(settings.telemetry, "worker")
    worker = Worker(settings, dsn)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    probe = await WorkerHealth.start(settings) if settings.queue.health_port else None

    def ready() -> None:
        # Printed once the worker is ready (embedder checked, pool open, listening).
        print(f"honcho-grpc worker {worker.worker_id} running", flush=True)
        if probe is not None:
            probe.ready()

    try:
        await worker.run(ready=ready)
    finally:
        if probe is not None:
            await probe.stop()
        otel.shutdown()  # flushes the last spans and metric points


async def retry_failed_main(settings: Settings, workspace_id: str | None) -> int:
    """`honcho-grpc worker --retry-failed [--workspace W]`."""
    pool = make_pool(resolve_dsn(settings), 2, name="honcho-retry")
    await pool.open(wait=True, timeout=30)
    try:
        return await retry_failed(pool, workspace_id)
    finally:
        await pool.close()
