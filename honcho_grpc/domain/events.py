"""Events for EventService.WatchEvents: a NOTIFY on `honcho_events` inside the transaction
that makes the change, so a watcher hears of it exactly when it is committed (and never of a
rolled-back one). This module defines their types and wire form; the statement that sends
one, for every type, is honcho_grpc/store/events.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

EVENTS_CHANNEL = "honcho_events"
# NOTIFY payloads must stay under 8000 bytes; lists in `data` are cut to fit.
MAX_PAYLOAD = 7000
MAX_IDS = 50

MESSAGES_CREATED = "messages.created"
CONCLUSIONS_DERIVED = "conclusions.derived"
CONCLUSION_INVALIDATED = "conclusion.invalidated"
SUMMARY_CREATED = "summary.created"
PEER_CARD_UPDATED = "peer_card.updated"
QUEUE_DRAINED = "queue.drained"
EMBEDDINGS_DRAINED = "embeddings.drained"


def event_json(type_: str, workspace_id: str, *, session_id: str | None = None,
               peer_id: str | None = None, peers: Iterable[str] = (),
               data: dict[str, Any] | None = None) -> str:
    """The wire form. `peers` lists every peer the event concerns (for filtering)."""
    body: dict[str, Any] = {
        "type": type_, "workspace_id": workspace_id, "session_id": session_id or "",
        "peer_id": peer_id or "", "peers": sorted(set(peers) | ({peer_id} if peer_id else set())),
        "time": datetime.now(UTC).isoformat(), "data": _capped(data or {}),
    }
    text = json.dumps(body, separators=(",", ":"), default=str)
    if len(text.encode()) > MAX_PAYLOAD:
        body["data"] = {k: v for k, v in body["data"].items() if not isinstance(v, list | dict)}
        body["peers"] = body["peers"][:10]
        text = json.dumps(body, separators=(",", ":"), default=str)
    return text


def _capped(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v[:MAX_IDS] if isinstance(v, list) else v for k, v in data.items()}
