"""The queue as one worker sees it: claimed units, their jobs, and which rows run together.

A *work unit* (`work_unit_key`: one session + observed peer, one summary tier, one dream pair,
one webhook endpoint) is processed in order by one worker at a time. Its lock is a row in
`work_unit_leases`, kept alive by the owner's heartbeat; a crashed owner's lease lapses and
the next claim takes it over. Rows move pending -> in_progress -> completed, or back to
pending with a backoff on failure, or to failed once attempts run out.

Every write that depends on owning a unit is *fenced*: it locks the lease row and checks the
owner first, so a worker that lost its lease (paused, cut off) cannot complete, fail or hand
back work someone else is redoing. The statements are honcho_grpc/store/queue/transport.py
(psycopg) and the completion honcho_grpc/domain/queue.py (asyncpg, with the task's writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from honcho_grpc.domain.queue import LeaseLost
from honcho_grpc.settings import QueueSettings
from honcho_grpc.store.queue import transport
from honcho_grpc.store.queue.transport import Pool
from honcho_grpc.work_units import (
    BATCHED,
    MalformedWorkUnit,
    RepresentationPayload,
    Status,
    parse_key,
    parse_payload,
    representation_key,
    session_of,
)

__all__ = ["Head", "Job", "LeaseLost", "Queue", "Unit", "retry_failed"]


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
    payload: dict[str, Any]  # as stored; a task reads it through work_units.parse_payload
    attempts: int
    created_at: datetime
    token_count: int = 0
    seq: int | None = None  # of the message a representation row is about
    trace_context: dict[str, str] | None = None  # W3C context of the request that caused it


@dataclass
class Head:
    """What `next_batch` found at the front of a unit."""

    batch: list[Job] = field(default_factory=list)
    abandoned: list[Job] = field(default_factory=list)  # out of attempts after crashes


class Queue:
    """The queue operations of one worker (`worker_id`)."""

    def __init__(self, pool: Pool, settings: QueueSettings, worker_id: str) -> None:
        self.pool = pool
        self.settings = settings
        self.worker_id = worker_id

    async def claim(self) -> Unit | None:
        """Lease the unit of the oldest due head row nobody holds; None when there is none."""
        async with self.pool.connection() as conn:
            found = await transport.claim(conn, self.worker_id, self.settings.lease_seconds,
                                          self.settings.workspaces or None)
        return Unit(*found) if found else None

    async def next_batch(self, unit: Unit) -> Head:
        """The unit's next rows to run: the head, plus followers of a batched type with the
        same settings, up to the token budget. Empty when drained or the head waits."""
        batched = _batched(unit)
        limit = self.settings.batch_max_messages if batched else 1
        async with self.pool.connection() as conn:
            rows = await transport.unit_head(conn, unit.workspace_id, unit.work_unit_key,
                                             max(limit, 1), span=batched)
        head = Head()
        first_seq = rows[0]["seq"] if rows else None
        for row in rows:
            job = _job(row)
            if row["status"] == Status.PENDING and not row["due"] and (
                    not head.batch or job.attempts > 0):
                # A retry's backoff stops the batch; a fresh row only held for batching
                # (store/queue hold_for_batch) joins its due head.
                break
            if row["status"] == Status.IN_PROGRESS and job.attempts >= self.settings.max_attempts:
                head.abandoned.append(job)  # it took a worker down every time it ran
                continue
            if head.batch and not (_fits(head.batch, job) and _within(
                    row, first_seq, self.settings.batch_max_tokens,
                    self.settings.batch_max_messages)):
                break
            job.seq = row["seq"]
            head.batch.append(job)
        return head

    async def join_stretch(self, unit: Unit, batch: list[Job],
                           kept: set[Unit]) -> list[tuple[Unit, list[Job]]]:
        """The other speakers' pending rows of the same stretch of the session, so that one
        extraction call covers them all: their units are leased (when free and ready) and
        added to `kept` -- the caller holds them until it is done with its own unit and
        then releases them -- and their head rows taken in order while they fall in the
        stretch. Empty for other kinds of work."""
        where = session_of(unit.work_unit_key)
        if where is None or not batch or self.settings.batch_max_messages < 2:
            return []
        ws, session = where
        head = _settings(batch[0])
        # The stretch the call reads runs from the batch's first message to its last, and
        # on over the others' rows after it while the budget allows (every message read
        # counts); others' rows inside it cost nothing more to extract. A speaker joins only
        # with every one of its messages in the stretch: facts are asked for each target
        # from all the new lines, so a line of a target derived before (or held by another
        # worker) would be derived twice.
        seqs = [j.seq for j in batch if j.seq is not None]
        if not seqs or head is None:
            return []
        start = min(seqs)
        async with self.pool.connection() as conn:
            end = max(max(seqs), await transport.stretch_end(
                conn, ws, session, start, self.settings.batch_max_messages,
                self.settings.batch_max_tokens))
            said = await transport.speakers_in(conn, ws, session, start, end)
            # Nor may it run past a message of this unit's own that its batch left out.
            own = parse_key(unit.work_unit_key).observed_id
            left_out = [q for q in said.get(own, set()) if q not in seqs]
            if left_out:
                end = min(left_out) - 1
                said = {p: {q for q in qs if q <= end} for p, qs in said.items()}
                said = {p: qs for p, qs in said.items() if qs}
            held = {u.work_unit_key for u in kept}
            keys = [representation_key(ws, session, p) for p in said]
            fresh = [k for k in keys if k != unit.work_unit_key and k not in held]
            leased = await transport.lease_units(conn, ws, fresh, self.worker_id,
                                                 self.settings.lease_seconds)
            kept.update(Unit(ws, k) for k in leased)
            joined: list[tuple[Unit, list[Job]]] = []
            for key in sorted((held | set(leased)) & set(keys)):
                speaker = parse_key(key).observed_id
                jobs: list[Job] = []
                for row in await transport.unit_head(conn, ws, key,
                                                     self.settings.batch_max_messages):
                    job = _job(row)
                    if row["status"] != Status.PENDING or (job.attempts > 0 and not row["due"]):
                        break
                    settings = _settings(job)
                    if settings is None or settings[1] != head[1] or row["seq"] is None \
                            or not start <= row["seq"] <= end:
                        break
                    job.seq = row["seq"]
                    jobs.append(job)
                if jobs and {j.seq for j in jobs} == said.get(speaker, set()):
                    joined.append((Unit(ws, key), jobs))
        return joined

    async def start(self, unit: Unit, jobs: list[Job]) -> None:
        """Mark rows in progress (an attempt counts from here: a crash spends it)."""
        async with self.pool.connection() as conn:
            attempts = await transport.start(conn, unit.workspace_id, unit.work_unit_key,
                                             self.worker_id, [j.id for j in jobs])
        if not attempts:
            raise LeaseLost(unit.work_unit_key)
        for job in jobs:
            job.attempts = attempts.get(job.id, job.attempts + 1)

    async def fail(self, unit: Unit, jobs: list[Job], error: str, *,
                   final: bool = False) -> dict[int, str]:
        """Back the rows off exponentially, or park them as failed when attempts are spent
        (or at once when `final`). Returns the new status per row id."""
        s = self.settings
        async with self.pool.connection() as conn:
            statuses = await transport.fail(
                conn, unit.workspace_id, unit.work_unit_key, self.worker_id,
                [j.id for j in jobs], error, final=final, max_attempts=s.max_attempts,
                retry_base_seconds=s.retry_base_seconds, retry_max_seconds=s.retry_max_seconds)
        if statuses is None:
            raise LeaseLost(unit.work_unit_key)
        return statuses

    async def requeue(self, unit: Unit, jobs: list[Job]) -> None:
        """Give rows back untouched (graceful shutdown mid-task): the attempt is refunded."""
        async with self.pool.connection() as conn:
            held = await transport.requeue(conn, unit.workspace_id, unit.work_unit_key,
                                           self.worker_id, [j.id for j in jobs])
        if not held:
            raise LeaseLost(unit.work_unit_key)

    async def heartbeat(self) -> set[Unit]:
        """Extend every lease this worker holds; returns the units still held."""
        async with self.pool.connection() as conn:
            held = await transport.heartbeat(conn, self.worker_id, self.settings.lease_seconds)
        return {Unit(*u) for u in held}

    async def release(self, unit: Unit) -> bool:
        """Drop the lease; returns True when the unit has nothing open left (drained)."""
        async with self.pool.connection() as conn:
            return await transport.release(conn, unit.workspace_id, unit.work_unit_key,
                                           self.worker_id)

    async def release_all(self) -> None:
        async with self.pool.connection() as conn:
            await transport.release_all(conn, self.worker_id)

    async def seconds_until_due(self) -> float | None:
        async with self.pool.connection() as conn:
            return await transport.seconds_until_due(conn, self.worker_id)

    async def pending_by_type(self) -> dict[str, int]:
        """Pending rows per task type, of the workspaces this worker serves (queue depth)."""
        async with self.pool.connection() as conn:
            return await transport.pending_by_type(conn, self.settings.workspaces or None)

    async def housekeeping(self) -> int:
        """Delete old completed rows and long-dead leases; one worker at a time does it."""
        async with self.pool.connection() as conn:
            return await transport.housekeeping(conn, self.settings.completed_retention_seconds)


def _batched(unit: Unit) -> bool:
    try:
        return parse_key(unit.work_unit_key).task_type in BATCHED
    except MalformedWorkUnit:
        return False  # not a kind of this protocol: its rows run one at a time


def _fits(batch: list[Job], job: Job) -> bool:
    """Same task and settings as the head. A payload that does not parse never joins a
    batch: it fails on its own."""
    head = batch[0]
    if job.task_type != head.task_type:
        return False
    settings = _settings(job)
    return settings is not None and settings == _settings(head)


def _within(row: DictRow, first_seq: int | None, max_tokens: int, max_messages: int) -> bool:
    """Whether the stretch from the head's message to this row's -- every message of the
    session in between, all speakers: what the extraction reads -- is within the batch
    budget (the head always runs)."""
    if row["seq"] is None or first_seq is None:
        return bool(row["span_tokens"] <= max_tokens)
    return bool(row["span_tokens"] <= max_tokens and row["seq"] - first_seq < max_messages)


def _settings(job: Job) -> tuple[tuple[str, ...], str] | None:
    """What must be equal for rows to be derived in one model call: who observes, and the
    custom instructions."""
    try:
        payload = parse_payload(job.task_type, job.payload)
    except MalformedWorkUnit:
        return None
    if not isinstance(payload, RepresentationPayload):
        return None
    return tuple(payload.observers), payload.custom_instructions


def _job(row: DictRow) -> Job:
    return Job(id=row["id"], workspace_id=row["workspace_id"], task_type=row["task_type"],
               work_unit_key=row["work_unit_key"], session_id=row["session_id"],
               payload=row["payload"] or {}, attempts=row["attempts"],
               created_at=row["created_at"], token_count=row["token_count"],
               trace_context=row.get("trace_context"))


async def retry_failed(pool: Pool, workspace_id: str | None = None,
                       ids: list[int] | None = None) -> int:
    """Put failed rows back in the queue with fresh attempts; returns how many."""
    async with pool.connection() as conn:
        return await transport.retry_failed(conn, workspace_id, ids)
