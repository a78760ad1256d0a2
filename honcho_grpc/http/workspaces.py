"""/v3/workspaces: get-or-create, list, update, delete, search, queue status, dreams, keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.message import Message
from honcho_grpc_proto.v1 import key_pb2, resources_pb2, search_pb2
from honcho_grpc_proto.v1 import workspace_pb2 as pb

from honcho_grpc.domain import keys, upsert, workspaces
from honcho_grpc.http import shapes
from honcho_grpc.http.body import StrictJsonRoute
from honcho_grpc.http.common import Paging, authorize, configuration, deps, metadata, once, paginate
from honcho_grpc.http.search import run_search
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking

router = APIRouter(prefix="/v3", route_class=StrictJsonRoute)
Json = dict[str, Any]


@router.post("/workspaces")
async def get_or_create(body: shapes.CreateWithId, request: Request,
                        d: Deps = Depends(deps)) -> JSONResponse:
    await authorize(request, "WorkspaceService/GetOrCreateWorkspace",
                    pb.GetOrCreateWorkspaceRequest(workspace_id=body.id))
    with checking() as c:
        c.id("id", body.id)
        changes = changes_of(c, body)
    found, created = await upsert.workspace(d.pool, body.id, changes)
    return JSONResponse(shapes.workspace(found), status_code=201 if created else 200)


@router.post("/workspaces/list")
async def list_workspaces(request: Request, body: shapes.ListBody | None = None,
                          paging: Paging = Depends(), d: Deps = Depends(deps)) -> Json:
    await authorize(request, "WorkspaceService/ListWorkspaces", pb.ListWorkspacesRequest())
    filters = body.filters if body else None
    return await paginate(
        paging, lambda size, token: workspaces.list_workspaces(d.pool, filters, paging.reverse,
                                                               size, token),
        shapes.workspace)


@router.put("/workspaces/{workspace_id}")
async def update(workspace_id: str, body: shapes.Update, request: Request,
                 d: Deps = Depends(deps)) -> Json:
    await authorize(request, "WorkspaceService/UpdateWorkspace", pb.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=workspace_id)))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        changes = changes_of(c, body)
    return shapes.workspace(await workspaces.update(d.pool, workspace_id, changes))


def changes_of(c: Checker, body: shapes.Update | shapes.CreateWithId,
               cls: type[Message] = resources_pb2.Configuration) -> Json:
    """Honcho's PUT (and get-or-create of an existing id): the fields sent are replaced, the
    others kept."""
    changes: Json = {}
    if body.metadata is not None:
        changes["metadata"] = metadata(c, "metadata", body.metadata)
    if body.configuration is not None:
        changes["configuration"] = configuration(c, "configuration", body.configuration, cls)
    return changes


@router.delete("/workspaces/{workspace_id}", status_code=202)
async def delete(workspace_id: str, request: Request, d: Deps = Depends(deps)) -> Json:
    await authorize(request, "WorkspaceService/DeleteWorkspace",
                    pb.DeleteWorkspaceRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    await workspaces.delete(d.pool, workspace_id, once("DeleteWorkspace"))
    return {"message": f"Workspace {workspace_id} deleted"}


@router.post("/workspaces/{workspace_id}/search")
async def search(workspace_id: str, body: shapes.SearchBody, request: Request,
                 d: Deps = Depends(deps)) -> list[Json]:
    await authorize(request, "SearchService/SearchMessages",
                    search_pb2.SearchMessagesRequest(workspace_id=workspace_id,
                                                     scope_id=body.scope or ""))
    return await run_search(d, workspace_id, body)


@router.get("/workspaces/{workspace_id}/queue/status")
async def queue_status(workspace_id: str, request: Request, observer_id: str = "",
                       sender_id: str = "", session_id: str = "",
                       d: Deps = Depends(deps)) -> Json:
    await authorize(request, "WorkspaceService/GetQueueStatus", pb.GetQueueStatusRequest(
        workspace_id=workspace_id, session_id=session_id, observer_id=observer_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id, required=False)
        c.id("observer_id", observer_id, required=False)
        c.id("sender_id", sender_id, required=False)
    status = await workspaces.queue_status(d.pool, workspace_id, session_id, observer_id,
                                           sender_id)
    out = _counts(status.totals)
    out["sessions"] = {s: {"session_id": s, **_counts(counts)}
                       for s, counts in status.sessions.items()} or None
    return out


def _counts(counts: workspaces.QueueCounts) -> Json:
    done = counts.completed + counts.failed
    return {"total_work_units": counts.pending + counts.in_progress + done,
            "completed_work_units": done, "in_progress_work_units": counts.in_progress,
            "pending_work_units": counts.pending}


@router.post("/workspaces/{workspace_id}/schedule_dream", status_code=204)
async def schedule_dream(workspace_id: str, body: shapes.DreamBody, request: Request,
                         d: Deps = Depends(deps)) -> Response:
    await authorize(request, "WorkspaceService/ScheduleDream", pb.ScheduleDreamRequest(
        workspace_id=workspace_id, observer_id=body.observer, session_id=body.session_id or ""))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("observer", body.observer)
        c.id("observed", body.observed or "", required=False)
        c.id("session_id", body.session_id or "", required=False)
    await workspaces.schedule_dream(d.pool, workspace_id, body.observer,
                                    body.observed or body.observer, body.dream_type,
                                    body.session_id)
    return Response(status_code=204)


@router.post("/keys")
async def create_key(request: Request, workspace_id: str = "", peer_id: str = "",
                     session_id: str = "", expires_at: datetime | None = None,
                     d: Deps = Depends(deps)) -> Json:
    """Honcho's key route: admin only, 405 with auth off, at least a workspace named (a key
    for the whole service comes from `honcho-grpc keys create --admin` or KeyService)."""
    await authorize(request, "KeyService/CreateKey", key_pb2.CreateKeyRequest())
    claims = keys.Claims(workspace=workspace_id, peer=peer_id, session=session_id)
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return {"key": keys.issue(d.settings.auth, claims, expires_at, "expires_at")}
