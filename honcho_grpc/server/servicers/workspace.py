"""WorkspaceService."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2
from honcho_grpc_proto.v1 import resources_pb2
from honcho_grpc_proto.v1 import workspace_pb2 as pb
from honcho_grpc_proto.v1 import workspace_pb2_grpc as rpc

from honcho_grpc.domain import workspaces
from honcho_grpc.domain.idempotent import Retry
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.work_units import DreamType

Ctx = grpc.aio.ServicerContext[Any, Any]

DREAM_TYPES: dict[int, DreamType] = {
    pb.DREAM_TYPE_UNSPECIFIED: "omni", pb.DREAM_TYPE_OMNI: "omni",
    pb.DREAM_TYPE_CARD_REFRESH: "card_refresh"}


class WorkspaceServicer(rpc.WorkspaceServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def GetOrCreateWorkspace(self, request: pb.GetOrCreateWorkspaceRequest,
                                   context: Ctx) -> pb.GetOrCreateWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            metadata = c.struct("metadata", request.metadata)
            c.configuration("configuration", request.configuration)
        found, created = await workspaces.get_or_create(
            self.deps.pool, request.workspace_id, metadata,
            convert.to_dict(request.configuration))
        return pb.GetOrCreateWorkspaceResponse(workspace=convert.workspace(found),
                                               created=created)

    async def GetWorkspace(self, request: pb.GetWorkspaceRequest,
                           context: Ctx) -> pb.GetWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
        found = await workspaces.get(self.deps.pool, request.workspace_id)
        return pb.GetWorkspaceResponse(workspace=convert.workspace(found))

    async def ListWorkspaces(self, request: pb.ListWorkspacesRequest,
                             context: Ctx) -> pb.ListWorkspacesResponse:
        with checking() as c:
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await workspaces.list_workspaces(self.deps.pool, filters, request.reverse, size,
                                                request.page_token)
        return pb.ListWorkspacesResponse(workspaces=[convert.workspace(w) for w in page.items],
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
        found = await workspaces.update(self.deps.pool, ws.id, changes)
        return pb.UpdateWorkspaceResponse(workspace=convert.workspace(found))

    async def DeleteWorkspace(self, request: pb.DeleteWorkspaceRequest,
                              context: Ctx) -> pb.DeleteWorkspaceResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.request_id("request_id", request.request_id)
        return await workspaces.delete(
            self.deps.pool, request.workspace_id,
            Retry(request.request_id, "DeleteWorkspace", request, pb.DeleteWorkspaceResponse))

    async def GetQueueStatus(self, request: pb.GetQueueStatusRequest,
                             context: Ctx) -> pb.GetQueueStatusResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id, required=False)
            c.id("observer_id", request.observer_id, required=False)
            c.id("sender_id", request.sender_id, required=False)
        status = await workspaces.queue_status(self.deps.pool, request.workspace_id,
                                               request.session_id, request.observer_id,
                                               request.sender_id)
        return pb.GetQueueStatusResponse(
            totals=_counts(status.totals),
            sessions={s: _counts(counts) for s, counts in status.sessions.items()},
            embedding=pb.EmbeddingBacklog(
                pending=status.embedding.pending,
                oldest_age=duration_pb2.Duration(
                    seconds=int(status.embedding.oldest_age_seconds),
                    nanos=int(status.embedding.oldest_age_seconds % 1 * 1e9))))

    async def ScheduleDream(self, request: pb.ScheduleDreamRequest,
                            context: Ctx) -> pb.ScheduleDreamResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("observer_id", request.observer_id)
            c.id("observed_id", request.observed_id, required=False)
            c.id("session_id", request.session_id, required=False)
            if request.dream_type not in DREAM_TYPES:
                c.fail("dream_type", "is not a known dream type")
        queued = await workspaces.schedule_dream(
            self.deps.pool, request.workspace_id, request.observer_id,
            request.observed_id or request.observer_id, DREAM_TYPES[request.dream_type],
            request.session_id or None)
        return pb.ScheduleDreamResponse(queued=queued)


def _counts(counts: workspaces.QueueCounts) -> resources_pb2.QueueCounts:
    return resources_pb2.QueueCounts(pending=counts.pending, in_progress=counts.in_progress,
                                     completed=counts.completed, failed=counts.failed)
