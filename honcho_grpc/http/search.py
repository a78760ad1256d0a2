"""Message search, shared by the workspace, session and peer search routes."""

from __future__ import annotations

from typing import Any

from honcho_grpc.domain import scopes
from honcho_grpc.domain.search import Scope, search_messages
from honcho_grpc.http import shapes
from honcho_grpc.http.common import exclusive, scope_id_of
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking


async def run_search(d: Deps, workspace_id: str, body: shapes.SearchBody, session_id: str = "",
                     peer_id: str = "") -> list[dict[str, Any]]:
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id, required=False)
        c.id("peer_id", peer_id, required=False)
        c.text("query", body.query, max_chars=10_000)
        if body.scope is not None:
            scope_id_of(c, "scope", body.scope)
            # A scope already says which sessions: naming one as well is a contradiction.
            exclusive(c, session_id=session_id or "session_id" in (body.filters or {}),
                      scope=body.scope)
    boundary = await scopes.boundary(d.pool, workspace_id,
                                     scopes=[body.scope] if body.scope else [])
    hits = await search_messages(d.pool, d.embedder, Scope(workspace_id, session_id, peer_id),
                                 body.query, body.filters or None, body.limit,
                                 boundary=boundary)
    return [shapes.message(h.message) for h in hits]
