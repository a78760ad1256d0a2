"""The worker's queue transport on psycopg 3: claim, lease, heartbeat, retry, release,
housekeeping (the fenced completion is asyncpg, in `__init__`, because it commits with the
task's results).

Statuses come from `work_units.Status`: as parameters where a value is written or compared,
and rendered into the text (`_OPEN`, `_PENDING`, `_COMPLETED`) where the predicate must match
a partial index of migration 0002 -- a parameter there would leave a prepared statement's
generic plan without the index, and the head of a unit would be found by scanning every open
row of its workspace.
"""

from __future__ import annotations

from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.errors import LockNotAvailable
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from honcho_grpc.store.queue import QUEUE_CHANNEL
from honcho_grpc.work_units import Status

Conn: TypeAlias = AsyncConnection[DictRow]
Pool: TypeAlias = AsyncConnectionPool[Conn]

HOUSEKEEPING_LOCK = 7_424_302  # advisory lock id: one sweeper at a time across workers
MAX_ERROR_CHARS = 2000


def _literal(*statuses: Status) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


_OPEN = f"({_literal(Status.PENDING, Status.IN_PROGRESS)})"
_PENDING = _literal(Status.PENDING)
_COMPLETED = _literal(Status.COMPLETED)


async def listen(conn: Conn) -> None:
    await conn.execute(f"LISTEN {QUEUE_CHANNEL}")


async def ping(conn: Conn) -> None:
    """A round trip on the listening connection: an idle one notices a dead server."""
    await conn.execute("SELECT 1")


async def claim(conn: Conn, worker_id: str, lease_seconds: float,
                workspaces: list[str] | None) -> tuple[str, str] | None:
    """Lease the unit of the oldest due head row nobody holds: (workspace, unit key). The
    claim itself is the function honcho_claim (migration 0002): rows passed over with FOR
    UPDATE SKIP LOCKED, the lease taken (or an expired one taken over) in one round trip."""
    row = await (await conn.execute(
        "SELECT workspace_id, work_unit_key FROM honcho_claim(%s, %s, %s)",
        (worker_id, lease_seconds, workspaces))).fetchone()
    return (row["workspace_id"], row["work_unit_key"]) if row else None


async def unit_head(conn: Conn, workspace_id: str, work_unit_key: str,
                    limit: int, *, span: bool = False) -> list[DictRow]:
    """The unit's first `limit` open rows in order, with whether each is due, the token
    count of the message it is about (0 for other work) and its `seq`. With `span`, also
    `span_tokens`: the tokens of every message of the session from the head's message to
    this row's, all speakers -- what an extraction up to this row reads."""
    cur = await conn.execute(f"""
        WITH head AS (
            SELECT q.id, q.workspace_id, q.task_type, q.work_unit_key, q.session_id,
                   q.payload, q.status, q.attempts, q.created_at, q.trace_context,
                   q.run_after <= now() AS due, coalesce(m.token_count, 0) AS token_count,
                   m.seq
            FROM queue q LEFT JOIN messages m
              ON m.workspace_id = q.workspace_id AND m.message_id = q.payload->>'message_id'
            WHERE q.workspace_id = %(ws)s AND q.work_unit_key = %(key)s
              AND q.status IN {_OPEN}
            ORDER BY q.id LIMIT %(limit)s)
        SELECT h.*, CASE WHEN %(span)s AND h.seq IS NOT NULL THEN (
                   SELECT coalesce(sum(s.token_count), 0) FROM messages s
                   WHERE s.workspace_id = h.workspace_id AND s.session_id = h.session_id
                     AND s.seq BETWEEN (SELECT min(f.seq) FROM head f) AND h.seq)
               ELSE h.token_count END AS span_tokens
        FROM head h ORDER BY h.id
        """, {"ws": workspace_id, "key": work_unit_key, "limit": limit, "span": span})
    return await cur.fetchall()


async def stretch_end(conn: Conn, workspace_id: str, session_id: str, first_seq: int,
                      max_messages: int, max_tokens: int) -> int:
    """The last message of the session an extraction starting at `first_seq` may read
    within the budget (every speaker's messages count); at least `first_seq`."""
    row = await (await conn.execute(
        "SELECT max(seq) AS last FROM (SELECT seq, sum(token_count) OVER (ORDER BY seq) "
        " AS running FROM messages WHERE workspace_id = %s AND session_id = %s "
        " AND seq BETWEEN %s AND %s) t WHERE running <= %s",
        (workspace_id, session_id, first_seq, first_seq + max_messages - 1,
         max_tokens))).fetchone()
    return max(first_seq, int(row["last"])) if row and row["last"] is not None else first_seq


async def speakers_in(conn: Conn, workspace_id: str, session_id: str, first_seq: int,
                      last_seq: int) -> dict[str, set[int]]:
    """Who said which of the session's messages from `first_seq` to `last_seq`."""
    cur = await conn.execute(
        "SELECT peer_id, seq FROM messages WHERE workspace_id = %s AND session_id = %s "
        "AND seq BETWEEN %s AND %s", (workspace_id, session_id, first_seq, last_seq))
    out: dict[str, set[int]] = {}
    for r in await cur.fetchall():
        out.setdefault(r["peer_id"], set()).add(r["seq"])
    return out


async def session_speakers(conn: Conn, workspace_id: str, session_id: str) -> list[str]:
    """The session's members (every author joins it): whose units may hold its messages."""
    cur = await conn.execute(
        "SELECT peer_id FROM session_peers WHERE workspace_id = %s AND session_id = %s "
        "ORDER BY peer_id", (workspace_id, session_id))
    return [r["peer_id"] for r in await cur.fetchall()]


# Leases the given units for the caller when their head row is pending and not backing off,
# and nobody else holds them (an expired lease is taken over), in key order. Lock waits are
# cut short: a unit being claimed this very moment is simply left to its claimer.
JOIN_SQL = f"""
WITH heads AS (
    SELECT u.key FROM unnest(%(keys)s::text[]) AS u(key) CROSS JOIN LATERAL (
        SELECT q.status, q.attempts, q.run_after FROM queue q
        WHERE q.workspace_id = %(ws)s AND q.work_unit_key = u.key AND q.status IN {_OPEN}
        ORDER BY q.id LIMIT 1) h
    WHERE h.status = %(pending)s AND (h.attempts = 0 OR h.run_after <= now())
    ORDER BY u.key)
INSERT INTO work_unit_leases AS l (workspace_id, work_unit_key, worker_id, expires_at)
SELECT %(ws)s, key, %(worker)s, now() + %(lease)s * interval '1 second' FROM heads
ON CONFLICT (workspace_id, work_unit_key) DO UPDATE
    SET worker_id = EXCLUDED.worker_id, expires_at = EXCLUDED.expires_at, acquired_at = now()
    WHERE l.expires_at <= now()
RETURNING l.work_unit_key
"""


async def lease_units(conn: Conn, workspace_id: str, keys: list[str], worker_id: str,
                      lease_seconds: float) -> list[str]:
    """Lease those of `keys` that are free and ready (JOIN_SQL); the keys leased."""
    if not keys:
        return []
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '200ms'")
            cur = await conn.execute(JOIN_SQL, {
                "keys": sorted(keys), "ws": workspace_id, "worker": worker_id,
                "lease": lease_seconds, "pending": Status.PENDING.value})
            return [r["work_unit_key"] for r in await cur.fetchall()]
    except LockNotAvailable:
        return []


async def start(conn: Conn, workspace_id: str, work_unit_key: str, worker_id: str,
                ids: list[int]) -> dict[int, int]:
    """Mark rows in progress and count the attempt; their new attempt counts by id, empty
    when the worker no longer holds the unit. One statement: a lease lost in the meantime
    only costs a row marked for nothing."""
    # The rows are locked in id order first, as the batch hold of a concurrent message write
    # locks them (store/queue HOLD_SQL): in crossed orders the two deadlocked under load.
    cur = await conn.execute(
        "WITH held AS (SELECT 1 FROM work_unit_leases WHERE workspace_id = %(ws)s"
        " AND work_unit_key = %(key)s AND worker_id = %(worker)s), "
        "locked AS (SELECT id FROM queue WHERE workspace_id = %(ws)s AND id = ANY(%(ids)s)"
        " AND EXISTS (SELECT 1 FROM held) ORDER BY id FOR UPDATE) "
        "UPDATE queue q SET status = %(status)s, attempts = q.attempts + 1, "
        "claimed_by = %(worker)s, updated_at = now() FROM locked "
        "WHERE q.workspace_id = %(ws)s AND q.id = locked.id "
        "RETURNING q.id, q.attempts",
        {"status": Status.IN_PROGRESS.value, "worker": worker_id, "ws": workspace_id,
         "key": work_unit_key, "ids": ids})
    return {r["id"]: r["attempts"] for r in await cur.fetchall()}


# Fenced like the completion: the lease row is locked first (FOR UPDATE waits for a takeover
# in flight and sees its outcome), and rows change only if this worker still holds it.
_LEASE = ("lease AS (SELECT worker_id FROM work_unit_leases WHERE workspace_id = %(ws)s "
          "AND work_unit_key = %(key)s FOR UPDATE)")
_HELD = "coalesce((SELECT worker_id FROM lease) = %(worker)s, false)"

FAIL_SQL = f"""
WITH {_LEASE}, changed AS (
    UPDATE queue SET
        status = CASE WHEN attempts >= %(max)s OR %(final)s THEN %(failed)s ELSE %(pending)s END,
        run_after = now() + least(%(cap)s, %(base)s * 2 ^ greatest(attempts - 1, 0))
                    * (0.75 + random() * 0.5) * interval '1 second',
        last_error = %(error)s, claimed_by = NULL, updated_at = now()
    WHERE workspace_id = %(ws)s AND id = ANY(%(ids)s) AND {_HELD}
    RETURNING id, status)
SELECT {_HELD} AS held, (SELECT coalesce(jsonb_object_agg(id, status), '{{}}') FROM changed)
       AS statuses
"""


async def fail(conn: Conn, workspace_id: str, work_unit_key: str, worker_id: str,
               ids: list[int], error: str, *, final: bool, max_attempts: int,
               retry_base_seconds: float, retry_max_seconds: float) -> dict[int, str] | None:
    """Back rows off exponentially (with jitter), or park them as failed once attempts are
    spent (or at once when `final`). The new status per row id; None when the worker no
    longer holds the unit (nothing changed)."""
    row = await (await conn.execute(FAIL_SQL, {
        "ws": workspace_id, "key": work_unit_key, "worker": worker_id, "ids": ids,
        "max": max_attempts, "final": final, "cap": retry_max_seconds,
        "base": retry_base_seconds, "error": error[:MAX_ERROR_CHARS],
        "failed": Status.FAILED.value, "pending": Status.PENDING.value})).fetchone()
    if row is None or not row["held"]:
        return None
    return {int(k): v for k, v in row["statuses"].items()}


REQUEUE_SQL = f"""
WITH {_LEASE}, changed AS (
    UPDATE queue SET status = %(pending)s, attempts = greatest(attempts - 1, 0),
        claimed_by = NULL, updated_at = now()
    WHERE workspace_id = %(ws)s AND id = ANY(%(ids)s) AND status = %(running)s AND {_HELD}
    RETURNING 1)
SELECT {_HELD} AS held, (SELECT count(*) FROM changed) AS n
"""


async def requeue(conn: Conn, workspace_id: str, work_unit_key: str, worker_id: str,
                  ids: list[int]) -> bool:
    """Give in-progress rows back untouched, their attempt refunded; False when the worker
    no longer holds the unit (nothing changed)."""
    row = await (await conn.execute(REQUEUE_SQL, {
        "ws": workspace_id, "key": work_unit_key, "worker": worker_id, "ids": ids,
        "pending": Status.PENDING.value, "running": Status.IN_PROGRESS.value})).fetchone()
    return bool(row and row["held"])


async def heartbeat(conn: Conn, worker_id: str, lease_seconds: float) -> list[tuple[str, str]]:
    """Extend every lease of the worker; the units it holds. Lease rows locked by its own
    completions in flight are its own and skipped, never waited for."""
    cur = await conn.execute(
        "WITH extended AS (UPDATE work_unit_leases SET expires_at = now() + %(lease)s "
        " * interval '1 second' WHERE (workspace_id, work_unit_key) IN ("
        "  SELECT workspace_id, work_unit_key FROM work_unit_leases WHERE worker_id = %(w)s"
        "  FOR UPDATE SKIP LOCKED)) "
        "SELECT workspace_id, work_unit_key FROM work_unit_leases WHERE worker_id = %(w)s",
        {"lease": lease_seconds, "w": worker_id})
    return [(r["workspace_id"], r["work_unit_key"]) for r in await cur.fetchall()]


async def release(conn: Conn, workspace_id: str, work_unit_key: str, worker_id: str) -> bool:
    """Drop the worker's lease of the unit; True when it held it and the unit has nothing
    open left (drained)."""
    row = await (await conn.execute(
        "WITH gone AS (DELETE FROM work_unit_leases WHERE workspace_id = %(ws)s "
        " AND work_unit_key = %(key)s AND worker_id = %(worker)s RETURNING 1) "
        "SELECT NOT EXISTS (SELECT 1 FROM queue WHERE workspace_id = %(ws)s "
        f" AND work_unit_key = %(key)s AND status IN {_OPEN}) AS drained, "
        " (SELECT count(*) FROM gone) AS released",
        {"ws": workspace_id, "key": work_unit_key, "worker": worker_id})).fetchone()
    return bool(row and row["drained"] and row["released"])


async def release_all(conn: Conn, worker_id: str) -> None:
    await conn.execute("DELETE FROM work_unit_leases WHERE worker_id = %s", (worker_id,))


async def seconds_until_due(conn: Conn, worker_id: str) -> float | None:
    """Until the earliest retry or another worker's lease expiry, so a sleeping worker wakes
    for it rather than at the next poll; None when there is neither."""
    row = await (await conn.execute(
        "SELECT extract(epoch FROM least("
        f" (SELECT min(run_after) FROM queue WHERE status = {_PENDING}"
        "  AND run_after > now()),"
        " (SELECT min(expires_at) FROM work_unit_leases WHERE worker_id <> %s"
        "  AND expires_at > now())) - now())::float8 AS wait",
        (worker_id,))).fetchone()
    return None if row is None or row["wait"] is None else max(0.0, float(row["wait"]))


async def pending_by_type(conn: Conn, workspaces: list[str] | None) -> dict[str, int]:
    """Pending rows per task type, of the given workspaces (all when None)."""
    cur = await conn.execute(
        "SELECT task_type, count(*) AS n FROM queue WHERE status = %(pending)s "
        "AND (%(only)s::text[] IS NULL OR workspace_id = ANY(%(only)s)) GROUP BY task_type",
        {"pending": Status.PENDING.value, "only": workspaces})
    return {r["task_type"]: int(r["n"]) for r in await cur.fetchall()}


async def housekeeping(conn: Conn, completed_retention_seconds: float) -> int:
    """Delete old completed rows (up to 10,000 a call) and long-dead leases; one worker at a
    time does it (0 when another holds the lock). Returns the rows deleted."""
    async with conn.transaction():
        got = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok",
                                        (HOUSEKEEPING_LOCK,))).fetchone()
        if not got or not got["ok"]:
            return 0
        cur = await conn.execute(
            "DELETE FROM queue q USING (SELECT workspace_id, id FROM queue "
            f" WHERE status = {_COMPLETED} AND completed_at < now() - %s * interval '1 second'"
            " LIMIT 10000) d WHERE q.workspace_id = d.workspace_id AND q.id = d.id",
            (completed_retention_seconds,))
        await conn.execute("DELETE FROM work_unit_leases "
                           "WHERE expires_at < now() - interval '10 minutes'")
        return cur.rowcount


async def retry_failed(conn: Conn, workspace_id: str | None, ids: list[int] | None) -> int:
    """Put failed rows back in the queue with fresh attempts (of one workspace, or the given
    ids, or all); returns how many, and wakes the workers."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE queue SET status = %(pending)s, attempts = 0, run_after = now(), "
            "updated_at = now() WHERE status = %(failed)s "
            "AND (%(ws)s::text IS NULL OR workspace_id = %(ws)s) "
            "AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s))",
            {"pending": Status.PENDING.value, "failed": Status.FAILED.value,
             "ws": workspace_id, "ids": ids})
        if cur.rowcount:
            await conn.execute("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))
        return cur.rowcount
