"""PeerService: peers, their sessions, cards and representations."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import peer_pb2 as pb
from honcho_grpc_proto.v1 import peer_pb2_grpc as rpc

from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.domain.representation import (
    DEFAULT_MAX,
    RepresentationQuery,
    render,
    select_conclusions,
)
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.store import memory, resources

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_CARD_ENTRIES = 40
MAX_CARD_ENTRY_CHARS = 200


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

    async def _require_peers(self, conn: Any, workspace_id: str, *peer_ids: str) -> None:
        for peer_id in dict.fromkeys(peer_ids):
            common.require(await resources.get_peer(conn, workspace_id, peer_id), "peer",
                           workspaceId=workspace_id, peerId=peer_id)

    async def GetPeerCard(self, request: pb.GetPeerCardRequest,
                          context: Ctx) -> pb.GetPeerCardResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.id("target_id", request.target_id, required=False)
        target = request.target_id or request.peer_id
        await self._require_peers(self.deps.pool, request.workspace_id, request.peer_id, target)
        entries = await memory.peer_card(self.deps.pool, request.workspace_id, request.peer_id,
                                         target)
        return pb.GetPeerCardResponse(entries=entries or [], exists=entries is not None)

    async def SetPeerCard(self, request: pb.SetPeerCardRequest,
                          context: Ctx) -> pb.SetPeerCardResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.id("target_id", request.target_id, required=False)
            if len(request.entries) > MAX_CARD_ENTRIES:
                c.fail("entries", f"holds more than {MAX_CARD_ENTRIES} entries")
            for i, entry in enumerate(request.entries):
                c.text(f"entries[{i}]", entry, max_chars=MAX_CARD_ENTRY_CHARS)
        target = request.target_id or request.peer_id
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await self._require_peers(conn, request.workspace_id, request.peer_id, target)
            stored = await memory.set_peer_card(conn, request.workspace_id, request.peer_id,
                                                target, list(request.entries))
        return pb.SetPeerCardResponse(entries=stored)

    def _representation_query(self, request: Any, session_id: str,
                              include_most_frequent: bool) -> RepresentationQuery:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.id("target_id", request.target_id, required=False)
            c.id("session_id", session_id, required=False)
            c.text("search_query", request.search_query, max_chars=10_000, min_chars=0)
            c.range("search_top_k", request.search_top_k, 0, 100)
            c.range("search_max_distance", request.search_max_distance, 0, 1)
            c.range("max_conclusions", request.max_conclusions, 0, 100)
        return RepresentationQuery(
            workspace_id=request.workspace_id, observer_id=request.peer_id,
            observed_id=request.target_id or request.peer_id, session_id=session_id or None,
            search_query=request.search_query, search_top_k=request.search_top_k,
            search_max_distance=request.search_max_distance,
            include_most_frequent=include_most_frequent,
            max_conclusions=request.max_conclusions or DEFAULT_MAX)

    async def GetRepresentation(self, request: pb.GetRepresentationRequest,
                                context: Ctx) -> pb.GetRepresentationResponse:
        q = self._representation_query(request, request.session_id,
                                       request.include_most_frequent)
        await self._require_peers(self.deps.pool, q.workspace_id, q.observer_id, q.observed_id)
        rows = await select_conclusions(self.deps.pool, self.deps.embedder, q)
        return pb.GetRepresentationResponse(representation=render(rows),
                                            conclusion_ids=[r["conclusion_id"] for r in rows])

    async def GetPeerContext(self, request: pb.GetPeerContextRequest,
                             context: Ctx) -> pb.GetPeerContextResponse:
        frequent = (request.include_most_frequent
                    if request.HasField("include_most_frequent") else True)
        q = self._representation_query(request, "", frequent)
        await self._require_peers(self.deps.pool, q.workspace_id, q.observer_id, q.observed_id)
        rows = await select_conclusions(self.deps.pool, self.deps.embedder, q)
        card = await memory.peer_card(self.deps.pool, q.workspace_id, q.observer_id,
                                      q.observed_id)
        return pb.GetPeerContextResponse(peer_id=q.observer_id, target_id=q.observed_id,
                                         representation=render(rows), peer_card=card or [])
