"""WorkspaceService."""

from __future__ import annotations

from typing import Any, Literal

import grpc
from honcho_grpc_proto.v1 import workspace_pb2 as pb
from honcho_grpc_proto.v1 import workspace_pb2_grpc as rpc

from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.store import queue, resources
from honcho_grpc.work_units import DreamPayload

Ctx = grpc.aio.ServicerContext[Any, Any]


class WorkspaceServicer(rpc.WorkspaceServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def GetOrCreateWorkspace(self, request: pb.GetOrCreateWorkspaceRequest,
                                   context: Ctx) -> pb.GetOrCreateWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            metadata = c.struct("metadata", request.metadata)
            c.configuration("configuration", request.configuration)
        async with self.deps.pool.acquire() as conn:
            row, created = await resources.get_or_create_workspace(
                conn, request.workspace_id, metadata, convert.to_dict(request.configuration))
        return pb.GetOrCreateWorkspaceResponse(workspace=convert.workspace(row), created=created)

    async def GetWorkspace(self, request: pb.GetWorkspaceRequest,
                           context: Ctx) -> pb.GetWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
        row = await resources.get_workspace(self.deps.pool, request.workspace_id)
        common.require(row, "workspace", workspaceId=request.workspace_id)
        return pb.GetWorkspaceResponse(workspace=convert.workspace(row))

    async def ListWorkspaces(self, request: pb.ListWorkspacesRequest,
                             context: Ctx) -> pb.ListWorkspacesResponse:
        with checking() as c:
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await resources.list_workspaces(self.deps.pool, filters, request.reverse, size,
                                               request.page_token)
        return pb.ListWorkspacesResponse(workspaces=[convert.workspace(r) for r in page.rows],
                                         next_page_token=page.next_token)

    async def UpdateWorkspace(self, request: pb.UpdateWorkspaceRequest,
                              context: Ctx) -> pb.UpdateWorkspaceResponse:
        ws = request.workspace
        with checking() as c:
            c.id("workspace.id", ws.id)
            c.struct("workspace.metadata", ws.metadata)
            c.configuration("workspace.configuration", ws.configuration)
            changes = common.mask_changes(ws, request.update_mask, {"metadata", "configuration"},
                                          c, "update_mask")
        async with self.deps.pool.acquire() as conn:
            row = await resources.update_workspace(conn, ws.id, changes)
        common.require(row, "workspace", workspaceId=ws.id)
        return pb.UpdateWorkspaceResponse(workspace=convert.workspace(row))

    async def DeleteWorkspace(self, request: pb.DeleteWorkspaceRequest,
                              context: Ctx) -> pb.DeleteWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.request_id("request_id", request.request_id)

        async def write(conn: Any) -> pb.DeleteWorkspaceResponse:
            found = await resources.delete_workspace(conn, request.workspace_id)
            common.check_found(found, "workspace", workspaceId=request.workspace_id)
            return pb.DeleteWorkspaceResponse()

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="DeleteWorkspace",
                               request=request, response_type=pb.DeleteWorkspaceResponse,
                               write=write)

    async def GetQueueStatus(self, request: pb.GetQueueStatusRequest,
                             context: Ctx) -> pb.GetQueueStatusResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id, required=False)
            c.id("observer_id", request.observer_id, required=False)
            c.id("sender_id", request.sender_id, required=False)
        rows = await queue.derivation_status(self.deps.pool, request.workspace_id,
                                             request.session_id, request.observer_id,
                                             request.sender_id)
        response = pb.GetQueueStatusResponse()
        for session_id, status, n in rows:
            for target in (response.totals, response.sessions[session_id]):
                setattr(target, status, getattr(target, status) + n)
        response.sessions.pop("", None)
        return response

    async def ScheduleDream(self, request: pb.ScheduleDreamRequest,
                            context: Ctx) -> pb.ScheduleDreamResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("observer_id", request.observer_id)
            c.id("observed_id", request.observed_id, required=False)
            c.id("session_id", request.session_id, required=False)
            if request.dream_type not in DREAM_TYPES:
                c.fail("dream_type", "is not a known dream type")
        ws, observer = request.workspace_id, request.observer_id
        observed = request.observed_id or observer
        async with self.deps.pool.acquire() as conn, conn.transaction():
            for peer in {observer, observed}:
                common.require(await resources.get_peer(conn, ws, peer), "peer",
                               workspaceId=ws, peerId=peer)
            if request.session_id:
                common.require(await resources.get_session(conn, ws, request.session_id),
                               "session", workspaceId=ws, sessionId=request.session_id)
            queued = await queue.enqueue_dream(conn, ws, DreamPayload(
                observer=observer, observed=observed, dream_type=DREAM_TYPES[request.dream_type],
                session_id=request.session_id or None))
        return pb.ScheduleDreamResponse(queued=queued)


DREAM_TYPES: dict[int, Literal["omni", "card_refresh"]] = {
    pb.DREAM_TYPE_UNSPECIFIED: "omni", pb.DREAM_TYPE_OMNI: "omni",
    pb.DREAM_TYPE_CARD_REFRESH: "card_refresh"}
