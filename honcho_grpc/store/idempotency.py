"""Idempotency keys: a write carrying `request_id` is recorded with its response in the same
transaction, so a retry replays the first response and writes nothing twice. Keys are kept
APP_IDEMPOTENCY_RETENTION_HOURS; the worker's housekeeping purges older ones, after which
the same `request_id` is a new request."""

from __future__ import annotations

import asyncpg

from honcho_grpc.errors import InvalidArgument


async def lookup(conn: asyncpg.Connection, workspace_id: str, request_id: str, method: str,
                 request_hash: bytes) -> bytes | None:
    """Return the stored response, or None. Takes a transaction-scoped lock on the key first,
    so a concurrent duplicate waits for the first attempt to commit and then replays it."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"{workspace_id}\x1f{request_id}")
    row = await conn.fetchrow(
        "SELECT method, request_hash, response FROM idempotency_keys "
        "WHERE workspace_id = $1 AND request_id = $2", workspace_id, request_id,
    )
    if row is None:
        return None
    if row["method"] != method or bytes(row["request_hash"]) != request_hash:
        raise InvalidArgument.field("request_id", "was already used for a different request",
                                    reason="REQUEST_ID_REUSED")
    return bytes(row["response"])


async def remember(conn: asyncpg.Connection, workspace_id: str, request_id: str, method: str,
                   request_hash: bytes, response: bytes) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (workspace_id, request_id, method, request_hash, response) "
        "VALUES ($1, $2, $3, $4, $5)", workspace_id, request_id, method, request_hash, response,
    )


PURGE_EXPIRED = ("DELETE FROM idempotency_keys "
                 "WHERE created_at < now() - make_interval(hours => $1)")


async def purge_expired(conn: asyncpg.Connection | asyncpg.Pool, hours: int) -> int:
    """Delete the keys older than `hours`; returns how many (the worker's housekeeping)."""
    status = await conn.execute(PURGE_EXPIRED, hours)
    return int(status.split()[-1])
