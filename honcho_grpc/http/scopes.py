"""/v3/workspaces/{workspace_id}/scopes: scopes (named sets of sessions) and their members.
Workspace or admin tokens only (server/auth.py's ScopeService policies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from honcho_grpc_proto.v1 import scope_pb2 as pb

from honcho_grpc.domain import scopes
from honcho_grpc.http import shapes
from honcho_grpc.http.body import StrictJsonRoute
from honcho_grpc.http.common import Paging, authorize, deps, metadata, paginate, scope_id_of
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking

router = APIRouter(prefix="/v3/workspaces/{workspace_id}/scopes", route_class=StrictJsonRoute)
Json = dict[str, Any]


def _ids(c: Checker, workspace_id: str, scope_id: str) -> None:
    c.id("workspace_id", workspace_id)
    scope_id_of(c, "scope_id", scope_id)


@router.post("")
async def get_or_create(workspace_id: str, body: shapes.CreateScope, request: Request,
                        d: Deps = Depends(deps)) -> JSONResponse:
    await authorize(request, "ScopeService/GetOrCreateScope", pb.GetOrCreateScopeRequest(
        workspace_id=workspace_id, scope_id=body.id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        scope_id_of(c, "id", body.id)
        meta = metadata(c, "metadata", body.metadata) if body.metadata is not None else None
    found, created = await scopes.get_or_create(d.pool, workspace_id, body.id, meta)
    return JSONResponse(shapes.scope(found), status_code=201 if created else 200)


@router.post("/list")
async def list_scopes(workspace_id: str, request: Request, paging: Paging = Depends(),
                      d: Deps = Depends(deps)) -> Json:
    await authorize(request, "ScopeService/ListScopes",
                    pb.ListScopesRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    return await paginate(
        paging, lambda size, token: scopes.list_scopes(d.pool, workspace_id, paging.reverse,
                                                       size, token),
        shapes.scope)


@router.get("/{scope_id}")
async def get(workspace_id: str, scope_id: str, request: Request,
              d: Deps = Depends(deps)) -> Json:
    await authorize(request, "ScopeService/GetScope", pb.GetScopeRequest(
        workspace_id=workspace_id, scope_id=scope_id))
    with checking() as c:
        _ids(c, workspace_id, scope_id)
    return shapes.scope(await scopes.get(d.pool, workspace_id, scope_id))


@router.post("/{scope_id}/sessions", status_code=204)
async def add_sessions(workspace_id: str, scope_id: str, body: shapes.ScopeSessions,
                       request: Request, d: Deps = Depends(deps)) -> Response:
    await authorize(request, "ScopeService/AddScopeSessions", pb.AddScopeSessionsRequest(
        workspace_id=workspace_id, scope_id=scope_id, session_ids=body.session_ids))
    with checking() as c:
        _ids(c, workspace_id, scope_id)
        if not body.session_ids:
            c.fail("session_ids", "is required")
        if len(body.session_ids) > scopes.MAX_SESSIONS_PER_ADD:
            c.fail("session_ids", f"names more than {scopes.MAX_SESSIONS_PER_ADD} sessions")
        for i, session_id in enumerate(body.session_ids):
            c.id(f"session_ids[{i}]", session_id)
    await scopes.add_sessions(d.pool, workspace_id, scope_id, body.session_ids)
    return Response(status_code=204)


@router.delete("/{scope_id}/sessions/{session_id}", status_code=204)
async def remove_session(workspace_id: str, scope_id: str, session_id: str, request: Request,
                         d: Deps = Depends(deps)) -> Response:
    await authorize(request, "ScopeService/RemoveScopeSession", pb.RemoveScopeSessionRequest(
        workspace_id=workspace_id, scope_id=scope_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, scope_id)
        c.id("session_id", session_id)
    await scopes.remove_session(d.pool, workspace_id, scope_id, session_id)
    return Response(status_code=204)


@router.post("/{scope_id}/sessions/list")
async def list_sessions(workspace_id: str, scope_id: str, request: Request,
                        paging: Paging = Depends(), d: Deps = Depends(deps)) -> Json:
    await authorize(request, "ScopeService/ListScopeSessions", pb.ListScopeSessionsRequest(
        workspace_id=workspace_id, scope_id=scope_id))
    with checking() as c:
        _ids(c, workspace_id, scope_id)
    return await paginate(
        paging, lambda size, token: scopes.list_sessions(d.pool, workspace_id, scope_id,
                                                         paging.reverse, size, token),
        shapes.session)


@router.get("/{scope_id}/status")
async def status(workspace_id: str, scope_id: str, request: Request,
                 d: Deps = Depends(deps)) -> Json:
    await authorize(request, "ScopeService/GetScopeStatus", pb.GetScopeStatusRequest(
        workspace_id=workspace_id, scope_id=scope_id))
    with checking() as c:
        _ids(c, workspace_id, scope_id)
    return shapes.scope_status(await scopes.status(d.pool, workspace_id, scope_id))
