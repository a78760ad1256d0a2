"""PeerService (cards and representations arrive with the dialectic issue)."""

from __future__ import annotations

from typing import Any

import grpc

from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.gen.honcho.v1 import peer_pb2 as pb
from honcho_grpc.gen.honcho.v1 import peer_pb2_grpc as rpc
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.store import resources

Ctx = grpc.aio.ServicerContext[Any, Any]


class PeerServicer(rpc.PeerServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def GetOrCreatePeer(self, request: pb.GetOrCreatePeerRequest,
                              context: Ctx) -> pb.GetOrCreatePeerResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            metadata = c.struct("metadata", request.metadata)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            row, created = await resources.get_or_create_peer(
                conn, request.workspace_id, request.peer_id, metadata,
                convert.to_dict(request.configuration))
        return pb.GetOrCreatePeerResponse(peer=convert.peer(row), created=created)

    async def GetPeer(self, request: pb.GetPeerRequest, context: Ctx) -> pb.GetPeerResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
        row = await resources.get_peer(self.deps.pool, request.workspace_id, request.peer_id)
        common.require(row, "peer", workspaceId=request.workspace_id, peerId=request.peer_id)
        return pb.GetPeerResponse(peer=convert.peer(row))

    async def ListPeers(self, request: pb.ListPeersRequest, context: Ctx) -> pb.ListPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await resources.list_peers(self.deps.pool, request.workspace_id, filters,
                                          request.reverse, size, request.page_token)
        return pb.ListPeersResponse(peers=[convert.peer(r) for r in page.rows],
                                    next_page_token=page.next_token)

    async def UpdatePeer(self, request: pb.UpdatePeerRequest,
                         context: Ctx) -> pb.UpdatePeerResponse:
        peer = request.peer
        with checking() as c:
            c.id("peer.workspace_id", peer.workspace_id)
            c.id("peer.id", peer.id)
            c.struct("peer.metadata", peer.metadata)
            changes = common.mask_changes(peer, request.update_mask,
                                          {"metadata", "configuration"}, c, "update_mask")
        async with self.deps.pool.acquire() as conn:
            row = await resources.update_peer(conn, peer.workspace_id, peer.id, changes)
        common.require(row, "peer", workspaceId=peer.workspace_id, peerId=peer.id)
        return pb.UpdatePeerResponse(peer=convert.peer(row))

    async def DeletePeer(self, request: pb.DeletePeerRequest,
                         context: Ctx) -> pb.DeletePeerResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.request_id("request_id", request.request_id)

        async def write(conn: Any) -> pb.DeletePeerResponse:
            found = await resources.delete_peer(conn, request.workspace_id, request.peer_id)
            common.check_found(found, "peer", workspaceId=request.workspace_id,
                               peerId=request.peer_id)
            return pb.DeletePeerResponse()

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="DeletePeer",
                               request=request, response_type=pb.DeletePeerResponse, write=write)

    async def ListPeerSessions(self, request: pb.ListPeerSessionsRequest,
                               context: Ctx) -> pb.ListPeerSessionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await resources.list_peer_sessions(self.deps.pool, request.workspace_id,
                                                  request.peer_id, filters, request.reverse,
                                                  size, request.page_token)
        return pb.ListPeerSessionsResponse(sessions=[convert.session(r) for r in page.rows],
                                           next_page_token=page.next_token)
