"""The worker's psycopg twin of honcho_grpc/store/events.emit (goes when the worker's domain
writes move onto the store)."""

from __future__ import annotations

from typing import Any

from honcho_grpc.domain.events import (
    CONCLUSION_INVALIDATED,
    CONCLUSIONS_DERIVED,
    EVENTS_CHANNEL,
    PEER_CARD_UPDATED,
    QUEUE_DRAINED,
    SUMMARY_CREATED,
    event_json,
)
from honcho_grpc.worker.db import Conn


async def emit(conn: Conn, type_: str, workspace_id: str, **kwargs: Any) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)",
                       (EVENTS_CHANNEL, event_json(type_, workspace_id, **kwargs)))


__all__ = ["CONCLUSIONS_DERIVED", "CONCLUSION_INVALIDATED", "PEER_CARD_UPDATED", "QUEUE_DRAINED",
           "SUMMARY_CREATED", "emit"]
