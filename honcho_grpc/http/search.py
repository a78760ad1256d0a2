"""Message search, shared by the workspace, session and peer search routes."""

from __future__ import annotations

from typing import Any

from honcho_grpc.domain.search import Scope, search_messages
from honcho_grpc.http import shapes
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking


async def run_search(d: Deps, workspace_id: str, body: shapes.SearchBody, session_id: str = "",
                     peer_id: str = "") -> list[dict[str, Any]]:
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id, required=False)
        c.id("peer_id", peer_id, required=False)
        c.text("query", body.query, max_chars=10_000)
    hits = await search_messages(d.pool, d.embedder, Scope(workspace_id, session_id, peer_id),
                                 body.query, body.filters or None, body.limit)
    return [shapes.message(h.message) for h in hits]
