"""Claiming work, leases, completion, retries: the queue as the worker sees it.

A *work unit* (`work_unit_key`: one session + observed peer, one summary tier, one dream pair,
one webhook endpoint) is processed in order by one worker at a time. Its lock is a row in
`work_unit_leases`, kept alive by the owner's heartbeat; a crashed owner's lease lapses and
the next claim takes it over. Rows move pending -> in_progress -> completed, or back to
pending with a backoff on failure, or to failed once attempts run out.

Every write that depends on owning a unit is *fenced*: it runs in a transaction that first
locks the lease row and checks the owner, so a worker that lost its lease (paused, cut off)
cannot complete work someone else is redoing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from honcho_grpc.settings import QueueSettings
from honcho_grpc.telemetry import current_context
from honcho_grpc.worker.db import Conn, Pool
from honcho_grpc.worker.values import Usage

QUEUE_CHANNEL = "honcho_queue"
# Task types whose consecutive pending rows of one unit are handled as one batch.
BATCHED = frozenset({"representation"})
MAX_ERROR_CHARS = 2000


class LeaseLost(Exception):
    """This worker no longer owns the work unit."""


@dataclass(frozen=True)
class Unit:
    workspace_id: str
    work_unit_key: str


@dataclass
class Job:
    """One claimed queue row."""

    id: int
    workspace_id: str
    task_type: str
    work_unit_key: str
    session_id: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    token_count: int = 0
    trace_context: dict[str, str] | None = None  # W3C context of the request that caused it


@dataclass
class Head:
    """What `next_batch` found at the front of a unit."""

    batch: list[Job] = field(default_factory=list)
    abandoned: list[Job] = field(default_factory=list)  # out of attempts after crashes


# The claim itself is the function honcho_claim (migration 0002): the oldest due unit head
# whose unit nobody holds, rows passed over with FOR UPDATE SKIP LOCKED, the lease taken (or an
# expired one taken over) in the same round trip.
CLAIM_SQL = "SELECT workspace_id, work_unit_key FROM honcho_claim(%s, %s, %s)"

HEAD_SQL = """
SELECT q.id, q.workspace_id, q.task_type, q.work_unit_key, q.session_id, q.payload, q.status,
       q.attempts, q.created_at, q.trace_context, q.run_after <= now() AS due,
       coalesce(m.token_count, 0) AS token_count
FROM queue q LEFT JOIN messages m
  ON m.workspace_id = q.workspace_id AND m.message_id = q.payload->>'message_id'
WHERE q.workspace_id = %s AND q.work_unit_key = %s AND q.status IN ('pending', 'in_progress')
ORDER BY q.id LIMIT %s
"""

FAIL_SQL = """
UPDATE queue SET
    status = CASE WHEN attempts >= %(max)s OR %(final)s THEN 'failed' ELSE 'pending' END,
    run_after = now() + least(%(cap)s, %(base)s * 2 ^ greatest(attempts - 1, 0))
                * (0.75 + random() * 0.5) * interval '1 second',
    last_error = %(error)s, claimed_by = NULL, updated_at = now()
WHERE workspace_id = %(ws)s AND id = ANY(%(ids)s)
RETURNING id, status
"""


class Queue:
    """The queue operations of one worker (`worker_id`)."""

    def __init__(self, pool: Pool, settings: QueueSettings, worker_id: str) -> None:
        self.pool = pool
        self.settings = settings
        self.worker_id = worker_id

    # -- claiming ------------------------------------------------------------------------

    async def claim(self) -> Unit | None:
        """Lease the unit of the oldest due head row nobody holds; None when there is none."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(CLAIM_SQL, (
                self.worker_id, self.settings.lease_seconds,
                self.settings.workspaces or None))).fetchone()
        return Unit(row["workspace_id"], row["work_unit_key"]) if row else None

    async def next_batch(self, unit: Unit) -> Head:
        """The unit's next rows to run: the head, plus followers of a batched type with the
        same settings, up to the token budget. Empty when drained or the head waits."""
        limit = self.settings.batch_max_messages if _batched(unit) else 1
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                HEAD_SQL, (unit.workspace_id, unit.work_unit_key, max(limit, 1)))).fetchall()
        head = Head()
        for row in rows:
            job = _job(row)
            if row["status"] == "pending" and not row["due"]:
                break
            if row["status"] == "in_progress" and job.attempts >= self.settings.max_attempts:
                head.abandoned.append(job)  # it took a worker down every time it ran
                continue
            if head.batch and not _fits(head.batch, job, self.settings.batch_max_tokens):
                break
            head.batch.append(job)
        return head

    async def start(self, unit: Unit, jobs: list[Job]) -> None:
        """Mark rows in progress (an attempt counts from here: a crash spends it). One
        statement: a lease lost in the meantime only costs a row marked for nothing."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "UPDATE queue SET status = 'in_progress', attempts = attempts + 1, "
                "claimed_by = %(worker)s, updated_at = now() "
                "WHERE workspace_id = %(ws)s AND id = ANY(%(ids)s) AND EXISTS ("
                " SELECT 1 FROM work_unit_leases WHERE workspace_id = %(ws)s"
                " AND work_unit_key = %(key)s AND worker_id = %(worker)s) "
                "RETURNING id, attempts",
                {"worker": self.worker_id, "ws": unit.workspace_id,
                 "key": unit.work_unit_key, "ids": [j.id for j in jobs]})).fetchall()
        if not rows:
            raise LeaseLost(unit.work_unit_key)
        attempts = {r["id"]: r["attempts"] for r in rows}
        for job in jobs:
            job.attempts = attempts.get(job.id, job.attempts + 1)

    # -- outcomes ------------------------------------------------------------------------

    async def complete(self, conn: Conn, unit: Unit, jobs: list[Job], usage: Usage) -> None:
        """Mark rows completed, inside the caller's fenced transaction."""
        await conn.execute(
            "UPDATE queue SET status = 'completed', completed_at = now(), updated_at = now(), "
            "usage = %s, last_error = NULL WHERE workspace_id = %s AND id = ANY(%s)",
            (Jsonb(usage.as_json()), unit.workspace_id, [j.id for j in jobs]))

    async def fail(self, unit: Unit, jobs: list[Job], error: str, *,
                   final: bool = False) -> dict[int, str]:
        """Back the rows off exponentially, or park them as failed when attempts are spent
        (or at once when `final`). Returns the new status per row id."""
        s = self.settings
        async with self.pool.connection() as conn, conn.transaction():
            await self._fence(conn, unit)
            cur = await conn.execute(FAIL_SQL, {
                "max": s.max_attempts, "final": final, "cap": s.retry_max_seconds,
                "base": s.retry_base_seconds, "error": error[:MAX_ERROR_CHARS],
                "ws": unit.workspace_id, "ids": [j.id for j in jobs]})
            return {r["id"]: r["status"] for r in await cur.fetchall()}

    async def requeue(self, unit: Unit, jobs: list[Job]) -> None:
        """Give rows back untouched (graceful shutdown mid-task): the attempt is refunded."""
        async with self.pool.connection() as conn, conn.transaction():
            await self._fence(conn, unit)
            await conn.execute(
                "UPDATE queue SET status = 'pending', attempts = greatest(attempts - 1, 0), "
                "claimed_by = NULL, updated_at = now() WHERE workspace_id = %s AND id = ANY(%s) "
                "AND status = 'in_progress'", (unit.workspace_id, [j.id for j in jobs]))

    @asynccontextmanager
    async def fenced(self, unit: Unit) -> AsyncIterator[Conn]:
        """A transaction that owns the unit: raises LeaseLost (and writes nothing) if not."""
        async with self.pool.connection() as conn, conn.transaction():
            await self._fence(conn, unit)
            yield conn

    async def _fence(self, conn: Conn, unit: Unit) -> None:
        row = await (await conn.execute(
            "SELECT worker_id FROM work_unit_leases WHERE workspace_id = %s "
            "AND work_unit_key = %s FOR UPDATE", (unit.workspace_id, unit.work_unit_key)
        )).fetchone()
        if row is None or row["worker_id"] != self.worker_id:
            raise LeaseLost(unit.work_unit_key)

    # -- leases --------------------------------------------------------------------------

    async def heartbeat(self) -> set[Unit]:
        """Extend every lease this worker holds; returns the units still held. Rows locked by
        our own writes in flight are ours and skipped (never waited for)."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (await conn.execute(
                "SELECT workspace_id, work_unit_key FROM work_unit_leases WHERE worker_id = %s",
                (self.worker_id,))).fetchall()
            await conn.execute(
                "UPDATE work_unit_leases SET expires_at = now() + %s * interval '1 second' "
                "WHERE (workspace_id, work_unit_key) IN (SELECT workspace_id, work_unit_key "
                "FROM work_unit_leases WHERE worker_id = %s FOR UPDATE SKIP LOCKED)",
                (self.settings.lease_seconds, self.worker_id))
        return {Unit(r["workspace_id"], r["work_unit_key"]) for r in rows}

    async def release(self, unit: Unit) -> bool:
        """Drop the lease; returns True when the unit has nothing open left (drained)."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "WITH gone AS (DELETE FROM work_unit_leases WHERE workspace_id = %(ws)s "
                " AND work_unit_key = %(key)s AND worker_id = %(worker)s RETURNING 1) "
                "SELECT NOT EXISTS (SELECT 1 FROM queue WHERE workspace_id = %(ws)s "
                " AND work_unit_key = %(key)s AND status IN ('pending', 'in_progress')) "
                " AS drained, (SELECT count(*) FROM gone) AS released",
                {"ws": unit.workspace_id, "key": unit.work_unit_key,
                 "worker": self.worker_id})).fetchone()
        return bool(row and row["drained"] and row["released"])

    async def release_all(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM work_unit_leases WHERE worker_id = %s",
                               (self.worker_id,))

    async def seconds_until_due(self) -> float | None:
        """Until the earliest retry or foreign lease expiry, so a sleeping worker wakes for
        it rather than at the next poll."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT extract(epoch FROM least("
                " (SELECT min(run_after) FROM queue WHERE status = 'pending'"
                "  AND run_after > now()),"
                " (SELECT min(expires_at) FROM work_unit_leases WHERE worker_id <> %s"
                "  AND expires_at > now())) - now())::float8 AS wait",
                (self.worker_id,))).fetchone()
        return None if row is None or row["wait"] is None else max(0.0, float(row["wait"]))

    async def pending_by_type(self) -> dict[str, int]:
        """Pending rows per task type, of the workspaces this worker serves (queue depth)."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT task_type, count(*) AS n FROM queue WHERE status = 'pending' "
                "AND (%(only)s::text[] IS NULL OR workspace_id = ANY(%(only)s)) "
                "GROUP BY task_type", {"only": self.settings.workspaces or None})).fetchall()
        return {r["task_type"]: int(r["n"]) for r in rows}

    # -- housekeeping --------------------------------------------------------------------

    async def housekeeping(self) -> int:
        """Delete old completed rows and long-dead leases; one worker at a time does it."""
        async with self.pool.connection() as conn, conn.transaction():
            got = await (await conn.execute(
                "SELECT pg_try_advisory_xact_lock(7424302) AS ok")).fetchone()
            if not got or not got["ok"]:
                return 0
            cur = await conn.execute(
                "DELETE FROM queue q USING (SELECT workspace_id, id FROM queue "
                " WHERE status = 'completed' AND completed_at < now() - %s * interval '1 second'"
                " LIMIT 10000) d WHERE q.workspace_id = d.workspace_id AND q.id = d.id",
                (self.settings.completed_retention_seconds,))
            await conn.execute("DELETE FROM work_unit_leases "
                               "WHERE expires_at < now() - interval '10 minutes'")
            return cur.rowcount


def _batched(unit: Unit) -> bool:
    return unit.work_unit_key.split(":", 1)[0] in BATCHED


def _fits(batch: list[Job], job: Job, max_tokens: int) -> bool:
    """Same task settings as the head, and within the token budget (the head always runs)."""
    head = batch[0]
    if job.task_type != head.task_type or _settings_key(job) != _settings_key(head):
        return False
    return sum(j.token_count for j in batch) + job.token_count <= max_tokens


def _settings_key(job: Job) -> str:
    p = job.payload
    return json.dumps([p.get("observers"), p.get("custom_instructions")], sort_keys=True)


def _job(row: dict[str, Any]) -> Job:
    return Job(id=row["id"], workspace_id=row["workspace_id"], task_type=row["task_type"],
               work_unit_key=row["work_unit_key"], session_id=row["session_id"],
               payload=row["payload"] or {}, attempts=row["attempts"],
               created_at=row["created_at"], token_count=row["token_count"],
               trace_context=row.get("trace_context"))


def job_trace_context() -> Jsonb | None:
    """The current task's trace context, so work a task queues continues its trace."""
    context = current_context()
    return Jsonb(context) if context else None


# -- outside the claim loop -------------------------------------------------------------------

async def retry_failed(pool: Pool, workspace_id: str | None = None,
                       ids: list[int] | None = None) -> int:
    """Put failed rows back in the queue with fresh attempts; returns how many."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE queue SET status = 'pending', attempts = 0, run_after = now(), "
            "updated_at = now() WHERE status = 'failed' "
            "AND (%(ws)s::text IS NULL OR workspace_id = %(ws)s) "
            "AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s))",
            {"ws": workspace_id, "ids": ids})
        if cur.rowcount:
            await conn.execute("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))
        return cur.rowcount


async def enqueue(conn: Conn, workspace_id: str, task_type: str, work_unit_key: str,
                  payload: dict[str, Any], session_id: str | None = None, *,
                  unique_pending: bool = False) -> bool:
    """Enqueue from inside the worker (dreams), in the caller's transaction. With
    `unique_pending`, skip it when the unit already has a pending row (the advisory lock makes
    the check exact against concurrent callers)."""
    if unique_pending:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (work_unit_key,))
        row = await (await conn.execute(
            "SELECT 1 FROM queue WHERE workspace_id = %s AND work_unit_key = %s "
            "AND status = 'pending' LIMIT 1", (workspace_id, work_unit_key))).fetchone()
        if row is not None:
            return False
    await conn.execute(
        "INSERT INTO queue (workspace_id, task_type, work_unit_key, session_id, payload, "
        "trace_context) VALUES (%s, %s, %s, %s, %s, %s)",
        (workspace_id, task_type, work_unit_key, session_id, Jsonb(payload),
         job_trace_context()))
    await conn.execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, workspace_id))
    return True
