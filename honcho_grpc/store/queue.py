"""Enqueueing background work. Always called inside the transaction of the causing write, so
a job exists exactly when its cause was committed; NOTIFY is delivered at commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from honcho_grpc.telemetry import current_context

QUEUE_CHANNEL = "honcho_queue"
EMBED_CHANNEL = "honcho_embed"


@dataclass
class Job:
    task_type: str
    work_unit_key: str
    payload: dict[str, Any]
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
        records=[(workspace_id, j.task_type, j.work_unit_key, j.session_id, j.payload,
                  j.trace_context or trace) for j in jobs])
    await conn.execute("SELECT pg_notify($1, $2)", QUEUE_CHANNEL, workspace_id)


async def notify_embedder(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_notify($1, '')", EMBED_CHANNEL)
