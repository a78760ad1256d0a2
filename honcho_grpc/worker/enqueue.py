"""Background work the API queues on request (ScheduleDream, TestWebhook). The server talks
asyncpg, so these take an asyncpg connection; the rows are the ones the worker consumes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from honcho_grpc.store.queue import QUEUE_CHANNEL
from honcho_grpc.telemetry import current_context


def dream_key(workspace_id: str, observer: str, observed: str) -> str:
    return f"dream:{workspace_id}:{observer}:{observed}"


async def schedule_dream(conn: asyncpg.Connection, workspace_id: str, observer: str,
                         observed: str, dream_type: str, session_id: str | None) -> bool:
    """Queue a dream unless one is already pending for the pair; True if queued. Call it
    inside a transaction."""
    key = dream_key(workspace_id, observer, observed)
    # The lock makes check-then-insert exact across concurrent callers (API and workers).
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
    queued = await conn.fetchval(
        "INSERT INTO queue (workspace_id, task_type, work_unit_key, session_id, payload, "
        "trace_context) SELECT $1, 'dream', $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM "
        "queue WHERE workspace_id = $1 AND work_unit_key = $2 AND status = 'pending') "
        "RETURNING true",
        workspace_id, key, session_id,
        {"observer": observer, "observed": observed, "dream_type": dream_type,
         "session_id": session_id}, current_context())
    if queued:
        await conn.execute("SELECT pg_notify($1, $2)", QUEUE_CHANNEL, workspace_id)
    return bool(queued)


async def enqueue_webhook_event(conn: asyncpg.Connection, workspace_id: str, event_type: str,
                                data: dict[str, Any]) -> int:
    """One delivery job per endpoint of the workspace; returns how many."""
    payload = {"type": event_type, "data": data, "timestamp": datetime.now(UTC).isoformat()}
    status: str = await conn.execute(
        "INSERT INTO queue (workspace_id, task_type, work_unit_key, payload, trace_context) "
        "SELECT workspace_id, 'webhook', 'webhook:' || workspace_id || ':' || endpoint_id, "
        "$2::jsonb || jsonb_build_object('endpoint_id', endpoint_id), $3::jsonb "
        "FROM webhook_endpoints WHERE workspace_id = $1", workspace_id, payload,
        current_context())
    count = int(status.split()[-1])
    if count:
        await conn.execute("SELECT pg_notify($1, $2)", QUEUE_CHANNEL, workspace_id)
    return count
