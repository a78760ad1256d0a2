"""WorkspaceService."""

from __future__ import annotations

from typing import Any

import grpc

from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.errors import unimplemented
from honcho_grpc.gen.honcho.v1 import workspace_pb2 as pb
from honcho_grpc.gen.honcho.v1 import workspace_pb2_grpc as rpc
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.store import resources

Ctx = grpc.aio.ServicerContext[Any, Any]


class WorkspaceServicer(rpc.WorkspaceServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def GetOrCreateWorkspace(self, request: pb.GetOrCreateWorkspaceRequest,
                                   context: Ctx) -> pb.GetOrCreateWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            metadata = c.struct("metadata", request.metadata)
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
        rows = await queue_status(self.deps.pool, request.workspace_id, request.session_id,
                                  request.observer_id, request.sender_id)
        response = pb.GetQueueStatusResponse()
        for row in rows:
            for target in (response.totals, response.sessions[row["session_id"] or ""]):
                setattr(target, row["status"], getattr(target, row["status"]) + row["n"])
        response.sessions.pop("", None)
        return response

    async def ScheduleDream(self, request: pb.ScheduleDreamRequest,
                            context: Ctx) -> pb.ScheduleDreamResponse:
        raise unimplemented("WorkspaceService.ScheduleDream")


async def queue_status(pool: Any, workspace_id: str, session_id: str, observer_id: str,
                       sender_id: str) -> list[Any]:
    """Counts of derivation work (representation, summary, dream) by session and status."""
    return list(await pool.fetch(
        """
        SELECT session_id, status, count(*) AS n FROM queue
        WHERE workspace_id = $1 AND task_type IN ('representation', 'summary', 'dream')
          AND ($2 = '' OR session_id = $2)
          AND ($3 = '' OR payload->'observers' ? $3 OR payload->>'observer' = $3)
          AND ($4 = '' OR payload->>'observed' = $4)
        GROUP BY session_id, status
        """,
        workspace_id, session_id, observer_id, sender_id,
    ))
