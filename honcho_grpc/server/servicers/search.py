"""SearchService."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import search_pb2 as pb
from honcho_grpc_proto.v1 import search_pb2_grpc as rpc

from honcho_grpc.domain import scopes
from honcho_grpc.domain.search import Scope, search_messages
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking, scope_id

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_LIMIT = 100


class SearchServicer(rpc.SearchServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def SearchMessages(self, request: pb.SearchMessagesRequest,
                             context: Ctx) -> pb.SearchMessagesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.text("query", request.query, max_chars=10_000)
            c.id("session_id", request.session_id, required=False)
            c.id("peer_id", request.peer_id, required=False)
            c.range("limit", request.limit, 0, MAX_LIMIT)
            filters = common.filters(c, request.filters)
            scope_id(c, "scope_id", request.scope_id, required=False)
            if request.scope_id and request.session_id:
                c.fail("scope_id", "cannot be combined with session_id")
        boundary = await scopes.boundary(
            self.deps.pool, request.workspace_id,
            scopes=[request.scope_id] if request.scope_id else [])
        scope = Scope(request.workspace_id, request.session_id, request.peer_id)
        hits = await search_messages(self.deps.pool, self.deps.embedder, scope, request.query,
                                     filters, request.limit or 10, boundary=boundary)
        return pb.SearchMessagesResponse(
            hits=[pb.SearchHit(message=convert.message(h.message), score=h.score) for h in hits])
