"""ScopeService: scopes (named sets of sessions) and their members (domain/scopes.py)."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import scope_pb2 as pb
from honcho_grpc_proto.v1 import scope_pb2_grpc as rpc

from honcho_grpc.domain import scopes
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking, id_list, scope_id

Ctx = grpc.aio.ServicerContext[Any, Any]


def _ids(c: Checker, workspace_id: str, scope: str) -> None:
    c.id("workspace_id", workspace_id)
    scope_id(c, "scope_id", scope)


class ScopeServicer(rpc.ScopeServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def GetOrCreateScope(self, request: pb.GetOrCreateScopeRequest,
                               context: Ctx) -> pb.GetOrCreateScopeResponse:
        with checking() as c:
            _ids(c, request.workspace_id, request.scope_id)
            metadata = c.struct("metadata", request.metadata)
        # As the other GetOrCreate* of this face: an existing scope comes back as it is.
        found, created = await scopes.get_or_create(
            self.deps.pool, request.workspace_id, request.scope_id, metadata, replace=False)
        return pb.GetOrCreateScopeResponse(scope=convert.scope(found), created=created)

    async def GetScope(self, request: pb.GetScopeRequest, context: Ctx) -> pb.GetScopeResponse:
        with checking() as c:
            _ids(c, request.workspace_id, request.scope_id)
        found = await scopes.get(self.deps.pool, request.workspace_id, request.scope_id)
        return pb.GetScopeResponse(scope=convert.scope(found))

    async def ListScopes(self, request: pb.ListScopesRequest,
                         context: Ctx) -> pb.ListScopesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
        page = await scopes.list_scopes(self.deps.pool, request.workspace_id, request.reverse,
                                        size, request.page_token)
        return pb.ListScopesResponse(scopes=[convert.scope(s) for s in page.items],
                                     next_page_token=page.next_token)

    async def AddScopeSessions(self, request: pb.AddScopeSessionsRequest,
                               context: Ctx) -> pb.AddScopeSessionsResponse:
        with checking() as c:
            _ids(c, request.workspace_id, request.scope_id)
            if not request.session_ids:
                c.fail("session_ids", "is required")
            id_list(c, "session_ids", request.session_ids, scopes.MAX_SESSIONS_PER_ADD)
        added = await scopes.add_sessions(self.deps.pool, request.workspace_id,
                                          request.scope_id, list(request.session_ids))
        return pb.AddScopeSessionsResponse(added=added)

    async def RemoveScopeSession(self, request: pb.RemoveScopeSessionRequest,
                                 context: Ctx) -> pb.RemoveScopeSessionResponse:
        with checking() as c:
            _ids(c, request.workspace_id, request.scope_id)
            c.id("session_id", request.session_id)
        removed = await scopes.remove_session(self.deps.pool, request.workspace_id,
                                              request.scope_id, request.session_id)
        return pb.RemoveScopeSessionResponse(removed=removed)

    async def ListScopeSessions(self, request: pb.ListScopeSessionsRequest,
                                context: Ctx) -> pb.ListScopeSessionsResponse:
        with checking() as c:
            _ids(c, request.workspace_id, request.scope_id)
            size = common.page_size(self.deps, request.page_size, c)
        page = await scopes.list_sessions(self.deps.pool, request.workspace_id,
                                          request.scope_id, request.reverse, size,
                                          request.page_token)
        return pb.ListScopeSessionsResponse(sessions=[convert.session(s) for s in page.items],
                                            next_page_token=page.next_token)

    async def GetScopeStatus(self, request: pb.GetScopeStatusRequest,
                             context: Ctx) -> pb.GetScopeStatusResponse:
        with checking() as c:
            _ids(c, request.workspace_id, request.scope_id)
        members = await scopes.status(self.deps.pool, request.workspace_id, request.scope_id)
        return pb.GetScopeStatusResponse(sessions=[pb.ScopeSessionStatus(
            session_id=m.session_id, add_time=convert.ts(m.added_at),
            conclusions=m.conclusions) for m in members])
