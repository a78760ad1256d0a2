"""PeerService: peers, their sessions, cards and representations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc
from honcho_grpc_proto.v1 import peer_pb2 as pb
from honcho_grpc_proto.v1 import peer_pb2_grpc as rpc

from honcho_grpc.domain import peers, scopes
from honcho_grpc.domain.idempotent import Retry
from honcho_grpc.domain.representation import DEFAULT_MAX, RepresentationQuery, render
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import boundary_options, checking

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
        found, created = await peers.get_or_create(
            self.deps.pool, request.workspace_id, request.peer_id, metadata,
            convert.to_dict(request.configuration))
        return pb.GetOrCreatePeerResponse(peer=convert.peer(found), created=created)

    async def GetPeer(self, request: pb.GetPeerRequest, context: Ctx) -> pb.GetPeerResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
        found = await peers.get(self.deps.pool, request.workspace_id, request.peer_id)
        return pb.GetPeerResponse(peer=convert.peer(found))

    async def ListPeers(self, request: pb.ListPeersRequest, context: Ctx) -> pb.ListPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await peers.list_peers(self.deps.pool, request.workspace_id, filters,
                                      request.reverse, size, request.page_token)
        return pb.ListPeersResponse(peers=[convert.peer(p) for p in page.items],
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
        found = await peers.update(self.deps.pool, peer.workspace_id, peer.id, changes)
        return pb.UpdatePeerResponse(peer=convert.peer(found))

    async def DeletePeer(self, request: pb.DeletePeerRequest,
                         context: Ctx) -> pb.DeletePeerResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.request_id("request_id", request.request_id)
        return await peers.delete(
            self.deps.pool, request.workspace_id, request.peer_id,
            Retry(request.request_id, "DeletePeer", request, pb.DeletePeerResponse))

    async def ListPeerSessions(self, request: pb.ListPeerSessionsRequest,
                               context: Ctx) -> pb.ListPeerSessionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await peers.sessions_of(self.deps.pool, request.workspace_id, request.peer_id,
                                       filters, request.reverse, size, request.page_token)
        return pb.ListPeerSessionsResponse(sessions=[convert.session(s) for s in page.items],
                                           next_page_token=page.next_token)

    async def GetPeerCard(self, request: pb.GetPeerCardRequest,
                          context: Ctx) -> pb.GetPeerCardResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.id("target_id", request.target_id, required=False)
        card = await peers.card(self.deps.pool, request.workspace_id, request.peer_id,
                                request.target_id or request.peer_id)
        return pb.GetPeerCardResponse(entries=card.entries if card else [],
                                      exists=card is not None)

    async def SetPeerCard(self, request: pb.SetPeerCardRequest,
                          context: Ctx) -> pb.SetPeerCardResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("peer_id", request.peer_id)
            c.id("target_id", request.target_id, required=False)
            if len(request.entries) > peers.MAX_CARD_ENTRIES:
                c.fail("entries", f"holds more than {peers.MAX_CARD_ENTRIES} entries")
            for i, entry in enumerate(request.entries):
                c.text(f"entries[{i}]", entry, max_chars=peers.MAX_CARD_ENTRY_CHARS)
        card = await peers.set_card(self.deps.pool, request.workspace_id, request.peer_id,
                                    request.target_id or request.peer_id,
                                    list(request.entries))
        return pb.SetPeerCardResponse(entries=card.entries)

    def _representation_query(self, request: pb.GetRepresentationRequest
                              | pb.GetPeerContextRequest, session_id: str,
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
        with checking() as c:
            boundary_options(c, "", request.scope_ids, request.session_ids, request.session_id)
        q = self._representation_query(request, request.session_id,
                                       request.include_most_frequent)
        q = replace(q, sessions=await scopes.boundary(
            self.deps.pool, request.workspace_id, scopes=list(request.scope_ids),
            sessions=list(request.session_ids) or None))
        found = await peers.representation(self.deps.pool, self.deps.embedder, q)
        return pb.GetRepresentationResponse(representation=render(found),
                                            conclusion_ids=[c.conclusion_id for c in found])

    async def GetPeerContext(self, request: pb.GetPeerContextRequest,
                             context: Ctx) -> pb.GetPeerContextResponse:
        frequent = (request.include_most_frequent
                    if request.HasField("include_most_frequent") else True)
        q = self._representation_query(request, "", frequent)
        found, card = await peers.context(self.deps.pool, self.deps.embedder, q)
        return pb.GetPeerContextResponse(peer_id=q.observer_id, target_id=q.observed_id,
                                         representation=render(found),
                                         peer_card=card.entries if card else [])
