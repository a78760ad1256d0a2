"""SQL for the embedding backlog: claiming due messages, storing their vectors, backing off
failures, and the clean-up when messages are deleted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple

import asyncpg
from pgvector import HalfVector

from honcho_grpc.model import Vector
from honcho_grpc.store import Conn, Executor, search_stats
from honcho_grpc.store.rows import every

# NOTIFY'd when messages enter the backlog: the server's drain loops wake (they also poll).
EMBED_CHANNEL = "honcho_embed"


async def add(conn: Conn, workspace_id: str, message_ids: list[str]) -> None:
    """Enter stored messages in the backlog and wake the embedder (at commit)."""
    if not message_ids:
        return
    await conn.copy_records_to_table("embedding_backlog", columns=["workspace_id", "message_id"],
                                     records=[(workspace_id, m) for m in message_ids])
    await conn.execute("SELECT pg_notify($1, '')", EMBED_CHANNEL)


class Pending(NamedTuple):
    """A claimed backlog row and its message (`content` None: the message is gone)."""

    workspace_id: str
    message_id: str
    attempts: int
    session_id: str | None
    peer_id: str | None
    content: str | None


async def claim_due(conn: Conn, limit: int) -> list[Pending]:
    """Up to `limit` due rows, locked for this transaction; rows another drainer holds are
    skipped. The transaction then commits without waiting for its WAL to reach the disk:
    a batch lost in a crash loses its vectors and the removal of its backlog rows together
    (one transaction), so it is embedded again; waiting for the flush at every batch took
    the drainer's time, not the database's CPU."""
    await conn.execute("SELECT set_config('synchronous_commit', 'off', true)")
    rows = await conn.fetch(
        """
        SELECT b.workspace_id, b.message_id, b.attempts, m.session_id, m.peer_id, m.content
        FROM embedding_backlog b LEFT JOIN messages m
          ON m.workspace_id = b.workspace_id AND m.message_id = b.message_id
        WHERE b.run_after <= now() ORDER BY b.run_after LIMIT $1
        FOR UPDATE OF b SKIP LOCKED
        """,
        limit,
    )
    return every(Pending, rows)


async def any_due(conn: Executor) -> bool:
    """Whether any message waits for its embedding now (rows backing off do not count)."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM embedding_backlog WHERE run_after <= now())"))


async def store_embeddings(conn: Conn, items: list[Pending], model: str,
                           vectors: Sequence[Vector]) -> None:
    """The messages' vectors (replacing older ones), counted in the search statistics. One
    statement for the batch, not one per row: a statement per message cost about as much as
    the rows' own heap and key inserts (2,000 rows without the HNSW index: 0.49 s row by
    row, 0.26 s as one statement a batch). The HNSW inserts remain the bulk of the cost
    (~0.7 ms of PostgreSQL CPU a message at 10k vectors). Vectors are stored in half
    precision (migration 0011)."""
    await conn.execute(
        "INSERT INTO message_embeddings (workspace_id, message_id, session_id, peer_id, "
        "model, embedding) SELECT u.ws, u.id, u.s, u.p, $5, u.v "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::halfvec[]) "
        "AS u(ws, id, s, p, v) "
        "ON CONFLICT (workspace_id, message_id) "
        "DO UPDATE SET embedding = EXCLUDED.embedding, model = EXCLUDED.model",
        [p.workspace_id for p in items], [p.message_id for p in items],
        [p.session_id for p in items], [p.peer_id for p in items], model,
        # Wrapped: asyncpg would take a bare array for a list of numbers, not one vector.
        [HalfVector(v) for v in vectors],
    )
    await search_stats.add_messages(conn, [p.workspace_id for p in items],
                                    [p.message_id for p in items])


async def forget(conn: Conn, items: list[Pending]) -> None:
    if items:
        await conn.execute(
            "DELETE FROM embedding_backlog b USING unnest($1::text[], $2::text[]) "
            "AS d(ws, id) WHERE b.workspace_id = d.ws AND b.message_id = d.id",
            [p.workspace_id for p in items], [p.message_id for p in items],
        )


async def back_off(conn: Conn, items: list[Pending], error: str, max_seconds: int) -> None:
    """Try again later: after 2^attempts seconds, at most `max_seconds`."""
    await conn.execute(
        "UPDATE embedding_backlog b SET attempts = attempts + 1, last_error = $3, "
        "run_after = now() + make_interval(secs => least($4, 2 ^ (attempts + 1))) "
        "FROM unnest($1::text[], $2::text[]) AS d(ws, id) "
        "WHERE b.workspace_id = d.ws AND b.message_id = d.id",
        [p.workspace_id for p in items], [p.message_id for p in items], error, max_seconds,
    )


async def pending_count(conn: Executor) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM embedding_backlog"))


class BacklogStatus(NamedTuple):
    """Messages of a selection waiting for their embedding, and the oldest one's wait."""

    pending: int
    oldest_age_seconds: float


async def workspace_status(conn: Executor, workspace_id: str, session_id: str,
                           sender_id: str) -> BacklogStatus:
    """The workspace's backlog, narrowed to a session and a sender when given (empty: all).
    Rows whose message is gone count until the drainer drops them: they are still owed."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS pending,
               coalesce(extract(epoch FROM now() - min(b.enqueue_time)), 0) AS oldest
        FROM embedding_backlog b LEFT JOIN messages m
          ON m.workspace_id = b.workspace_id AND m.message_id = b.message_id
        WHERE b.workspace_id = $1 AND ($2 = '' OR m.session_id = $2)
          AND ($3 = '' OR m.peer_id = $3)
        """,
        workspace_id, session_id, sender_id,
    )
    return BacklogStatus(int(row["pending"]), max(0.0, float(row["oldest"])))


async def drained_workspaces(conn: Executor, workspace_ids: Sequence[str]) -> list[str]:
    """Those of `workspace_ids` with nothing left in the backlog."""
    rows = await conn.fetch(
        "SELECT w FROM unnest($1::text[]) AS w WHERE NOT EXISTS "
        "(SELECT 1 FROM embedding_backlog b WHERE b.workspace_id = w)",
        sorted(set(workspace_ids)),
    )
    return [r[0] for r in rows]


@contextlib.asynccontextmanager
async def listening(pool: asyncpg.Pool, channel: str,
                    on_notify: Callable[..., None]) -> AsyncIterator[None]:
    """LISTEN on `channel` with one pooled connection for as long as the block runs."""
    conn = await pool.acquire()
    try:
        await conn.add_listener(channel, on_notify)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError):
                await conn.remove_listener(channel, on_notify)
    finally:
        await pool.release(conn)


async def forget_where(conn: Conn, workspace_id: str, condition: str, *args: object) -> None:
    """Drop backlog rows of the messages matching `condition` (SQL over alias m, args from
    $2), before those messages are deleted."""
    await conn.execute(
        f"DELETE FROM embedding_backlog b USING messages m WHERE b.workspace_id = $1 "
        f"AND m.workspace_id = $1 AND m.message_id = b.message_id AND {condition}",
        workspace_id, *args)
