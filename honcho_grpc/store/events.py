"""Sending an event to EventService watchers (see honcho_grpc/domain/events.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from honcho_grpc.domain.events import EVENTS_CHANNEL, event_json


async def emit(conn: asyncpg.Connection, type_: str, workspace_id: str, **kwargs: Any) -> None:
    """NOTIFY inside the caller's transaction: delivered at commit, never if rolled back."""
    await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL,
                       event_json(type_, workspace_id, **kwargs))
