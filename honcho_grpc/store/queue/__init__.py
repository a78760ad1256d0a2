"""Every statement on the queue. What a row means (keys, payloads, statuses) is
honcho_grpc/work_units.py.

Here (asyncpg): enqueueing, always inside the transaction of the causing write, so a job
exists exactly when its cause was committed (NOTIFY is delivered at commit); the status
counts callers read; and the worker's fenced completion, which commits with the results of
the task it completes. `transport.py` (psycopg 3): the rest of the worker's side -- claim,
lease, heartbeat, retry, release, housekeeping. The split follows the drivers: the server
never loads psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from honcho_grpc.telemetry import current_context
from honcho_grpc.work_units import (
    DERIVATION,
    CardPayload,
    DreamPayload,
    Payload,
    Status,
    TaskType,
    card_key,
    dream_key,
    payload_json,
    webhook_key,
)

QUEUE_CHANNEL = "honcho_queue"


@dataclass
class Job:
    task_type: TaskType
    work_unit_key: str
    payload: Payload
    session_id: str | None = None
    trace_context: dict[str, str] | None = field(default=None)


async def enqueue(conn: asyncpg.Connection, workspace_id: str, jobs: list[Job]) -> None:
    if not jobs:
        return
    # The worker continues the trace of the request that caused the work.
    trace = current_context()
    await conn.copy_records_to_table(
        "queue", columns=["workspace_id", "task_type", "work_unit_key", "session_id", "payload",
                          "trace_context"],
        records=[(workspace_id, j.task_type.value, j.work_unit_key, j.session_id,
                  payload_json(j.payload), j.trace_context or trace) for j in jobs])
    await notify_worker(conn, workspace_id)


# Batching in live traffic: a representation unit's open rows are held (run_after in the
# future) until the messages its extraction will read -- every message of the session from the
# one before its oldest pending row on, other speakers' included -- reach `min_tokens`, or the
# unit has had no new message for `idle_seconds` (0: no idle rule), or its oldest row is
# `wait_seconds` old (the bound: a row never waits longer). Rows already tried (attempts > 0)
# keep their backoff.
#
# On the path of every message write, so its cost is bounded by the batch, not by what is
# pending. Only a unit's head decides when it may be claimed (the worker then takes the
# fresh rows behind a due head with it), so a unit whose head is due and past its wait is
# left alone; otherwise the token sum stops as soon as it reaches `min_tokens` (a running
# sum along the session's index, cut by LIMIT 1), and only rows whose state changes are
# written -- held rows that become due, held rows whose time moves. Rewriting every pending
# row of the unit at every write made a 10k-message write O(n^2) whenever the worker lagged:
# 113 ms of PostgreSQL per batch of 100 at 10k under `serve` (11.5 of 13.8 s).
# The rows to write are locked in id order first, so two writers (a message write and a
# worker starting the unit's rows, which also goes in id order) never cross. Every step reads
# by unit (queue_unit's order) or by id (= ANY of an array), never a join the planner may turn
# into a scan of the queue: a fresh, fast-growing queue has no statistics yet.
HOLD_SQL = """
WITH heads AS MATERIALIZED (
    SELECT u.key, h.created_at, h.session_id, h.first_seq, h.run_after
    FROM unnest($2::text[]) AS u(key) CROSS JOIN LATERAL (
        SELECT q.created_at, q.session_id, (q.payload->>'seq')::bigint AS first_seq,
               q.run_after
        FROM queue q
        WHERE q.workspace_id = $1 AND q.work_unit_key = u.key AND q.status = 'pending'
          AND q.attempts = 0
        ORDER BY q.workspace_id, q.work_unit_key, q.id LIMIT 1) h
    WHERE h.run_after > now() OR h.created_at + $3 * interval '1 second' > now()),
ready AS MATERIALIZED (
    SELECT hd.key, hd.run_after AS head_after,
           CASE WHEN $5 > 0 THEN least(hd.created_at + $3 * interval '1 second',
                                       now() + $5 * interval '1 second')
                ELSE hd.created_at + $3 * interval '1 second' END AS held_until,
           EXISTS (SELECT 1 FROM (
                       SELECT sum(m.token_count) OVER (ORDER BY m.seq ROWS UNBOUNDED PRECEDING)
                       FROM messages m
                       WHERE m.workspace_id = $1 AND m.session_id = hd.session_id
                         AND m.seq >= hd.first_seq - 1
                       ORDER BY m.seq) AS running(tokens)
                   WHERE running.tokens >= $4 LIMIT 1) AS enough
    FROM heads hd),
changing AS MATERIALIZED (
    -- Driven from the (few) units that may change, whatever the statistics say of queue
    -- (OFFSET 0 keeps the planner from flattening the lateral scan into a scan of queue).
    SELECT c.id, CASE WHEN r.enough THEN now() ELSE r.held_until END AS due
    FROM ready r CROSS JOIN LATERAL (
        SELECT q.id FROM queue q
        WHERE q.workspace_id = $1 AND q.work_unit_key = r.key AND q.status = 'pending'
          AND q.attempts = 0
          AND CASE WHEN r.enough THEN q.run_after > now() ELSE q.run_after <> r.held_until END
        ORDER BY q.workspace_id, q.work_unit_key, q.id OFFSET 0) c
    WHERE r.head_after > now() OR NOT r.enough),
locked AS (
    SELECT q.id FROM queue q
    WHERE q.workspace_id = $1 AND q.id = ANY (ARRAY(SELECT id FROM changing))
      AND q.status = 'pending' AND q.attempts = 0
    ORDER BY q.id FOR UPDATE OF q)
UPDATE queue q SET run_after = c.due FROM changing c
WHERE q.workspace_id = $1 AND q.id = ANY (ARRAY(SELECT id FROM locked)) AND q.id = c.id
"""


async def hold_for_batch(conn: asyncpg.Connection, workspace_id: str, unit_keys: list[str],
                         *, wait_seconds: float, min_tokens: int,
                         idle_seconds: float = 0.0) -> None:
    """Hold the units' fresh rows until enough is pending, the unit is quiet, or the oldest
    is old enough (see HOLD_SQL); inside the transaction that enqueued them."""
    if unit_keys and (wait_seconds > 0 and min_tokens > 0):
        await conn.execute(HOLD_SQL, workspace_id, sorted(set(unit_keys)), wait_seconds,
                           min_tokens, idle_seconds)


async def notify_worker(conn: asyncpg.Connection, workspace_id: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", QUEUE_CHANNEL, workspace_id)


async def enqueue_dream(conn: asyncpg.Connection, workspace_id: str,
                        payload: DreamPayload) -> bool:
    """Queue a dream unless one is already pending for the pair; True if queued. Call it
    inside a transaction."""
    key = dream_key(workspace_id, payload.observer, payload.observed)
    # The lock makes check-then-insert exact across concurrent callers (API and workers).
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
    queued = await conn.fetchval(
        "INSERT INTO queue (workspace_id, task_type, work_unit_key, session_id, payload, "
        "trace_context) SELECT $1, $6, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM "
        "queue WHERE workspace_id = $1 AND work_unit_key = $2 AND status = $7) "
        "RETURNING true",
        workspace_id, key, payload.session_id, payload_json(payload), current_context(),
        TaskType.DREAM.value, Status.PENDING.value)
    if queued:
        await notify_worker(conn, workspace_id)
    return bool(queued)


async def enqueue_cards(conn: asyncpg.Connection, workspace_id: str,
                        pairs: list[tuple[str, str]], refresh_seconds: float,
                        session_id: str | None = None) -> int:
    """Queue a card refresh for each (observer, observed) pair that has none pending, due
    `refresh_seconds` after the card was last refreshed (at once for a pair without a card);
    how many were queued. None for a pair whose dream is pending: the dream refreshes the
    card. Inside the transaction of the extraction that calls for them (its session is the
    row's, so that the session's queue status counts the refresh once it is due)."""
    queued = 0
    for observer, observed in sorted(set(pairs)):  # advisory locks in one order
        key = card_key(workspace_id, observer, observed)
        dream = dream_key(workspace_id, observer, observed)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
        queued += int(bool(await conn.fetchval(
            "INSERT INTO queue (workspace_id, task_type, work_unit_key, payload, "
            "trace_context, session_id, run_after) "
            "SELECT $1, $5, $2, $3, $4, $11, greatest(now(), (SELECT c.updated_at + $8 * "
            " interval '1 second' FROM peer_cards c WHERE c.workspace_id = $1 "
            " AND c.observer_id = $6 AND c.observed_id = $7)) "
            "WHERE NOT EXISTS (SELECT 1 FROM queue WHERE workspace_id = $1 "
            " AND work_unit_key = ANY($10::text[]) AND status = $9) RETURNING true",
            workspace_id, key, payload_json(CardPayload(observer=observer, observed=observed)),
            current_context(), TaskType.CARD.value, observer, observed, refresh_seconds,
            Status.PENDING.value, [key, dream], session_id)))
    if queued:
        await notify_worker(conn, workspace_id)
    return queued


async def is_pending(conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str,
                     work_unit_key: str) -> bool:
    """Whether the unit has a row waiting to run."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM queue WHERE workspace_id = $1 AND work_unit_key = $2 "
        "AND status = $3)", workspace_id, work_unit_key, Status.PENDING.value))


async def enqueue_webhook_deliveries(conn: asyncpg.Connection, workspace_id: str,
                                     event_type: str, data: dict[str, Any]) -> int:
    """One delivery job per endpoint of the workspace (a WebhookPayload each); returns how
    many."""
    payload = {"type": event_type, "data": data, "timestamp": datetime.now(UTC).isoformat()}
    status: str = await conn.execute(
        "INSERT INTO queue (workspace_id, task_type, work_unit_key, payload, trace_context) "
        "SELECT workspace_id, $4, $4 || ':' || workspace_id || ':' || endpoint_id, "
        "$2::jsonb || jsonb_build_object('endpoint_id', endpoint_id), $3::jsonb "
        "FROM webhook_endpoints WHERE workspace_id = $1", workspace_id, payload,
        current_context(), TaskType.WEBHOOK.value)
    count = int(status.split()[-1])
    if count:
        await notify_worker(conn, workspace_id)
    return count


async def drop_undelivered(conn: asyncpg.Connection, workspace_id: str,
                           endpoint_id: str) -> None:
    """Undelivered events of a removed endpoint (the worker would skip them anyway)."""
    await conn.execute(
        "DELETE FROM queue WHERE workspace_id = $1 AND work_unit_key = $2 "
        "AND status = ANY($3::text[])", workspace_id, webhook_key(workspace_id, endpoint_id),
        [Status.PENDING.value, Status.FAILED.value])


async def derivation_status(conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str,
                            session_id: str, observer_id: str,
                            sender_id: str) -> list[tuple[str, str, int]]:
    """(session id, status, count) of derivation work (representation, summary, dream, and
    card refreshes once due). A row is in progress only while a live lease covers its unit;
    rows a crashed worker left behind count as pending (they are claimable again)."""
    rows = await conn.fetch(
        """
        SELECT q.session_id,
               CASE WHEN q.status = $6 AND NOT EXISTS (
                        SELECT 1 FROM work_unit_leases l
                        WHERE l.workspace_id = q.workspace_id
                          AND l.work_unit_key = q.work_unit_key AND l.expires_at > now())
                    THEN $7 ELSE q.status END AS status,
               count(*) AS n
        FROM queue q
        WHERE q.workspace_id = $1 AND (q.task_type = ANY($5::text[]) OR (
                  -- a card refresh counts once due, not while it waits for its interval
                  q.task_type = $8 AND NOT (q.status = $7 AND q.run_after > now())))
          AND ($2 = '' OR q.session_id = $2)
          AND ($3 = '' OR q.payload->'observers' ? $3 OR q.payload->>'observer' = $3)
          AND ($4 = '' OR q.payload->>'observed' = $4)
        GROUP BY 1, 2
        """,
        workspace_id, session_id, observer_id, sender_id, [t.value for t in DERIVATION],
        Status.IN_PROGRESS.value, Status.PENDING.value, TaskType.CARD.value)
    return [(r["session_id"] or "", r["status"], int(r["n"])) for r in rows]


# -- the worker's fenced completion ---------------------------------------------------------

async def hold_lease(conn: asyncpg.Connection, workspace_id: str, work_unit_key: str,
                     worker_id: str) -> bool:
    """Lock the unit's lease row until the transaction ends; whether `worker_id` holds it.
    Under the lock nobody can take the unit over before this transaction is finished."""
    owner = await conn.fetchval(
        "SELECT worker_id FROM work_unit_leases WHERE workspace_id = $1 "
        "AND work_unit_key = $2 FOR UPDATE", workspace_id, work_unit_key)
    return bool(owner == worker_id)


async def mark_completed(conn: asyncpg.Connection, workspace_id: str, ids: list[int],
                         usage: dict[str, int]) -> None:
    await conn.execute(
        "UPDATE queue SET status = $3, completed_at = now(), updated_at = now(), usage = $4, "
        "last_error = NULL WHERE workspace_id = $1 AND id = ANY($2::bigint[])",
        workspace_id, ids, Status.COMPLETED.value, usage)
