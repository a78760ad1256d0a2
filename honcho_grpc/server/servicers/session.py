"""SessionService: sessions, membership, context and summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from honcho_grpc_proto.v1 import resources_pb2
from honcho_grpc_proto.v1 import session_pb2 as pb
from honcho_grpc_proto.v1 import session_pb2_grpc as rpc

from honcho_grpc.domain import scopes, sessions
from honcho_grpc.domain.context import build_context
from honcho_grpc.domain.idempotent import Retry
from honcho_grpc.domain.representation import DEFAULT_MAX, RepresentationQuery
from honcho_grpc.ids import new_id
from honcho_grpc.model import PeerSettings, SessionPeer
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking, id_list, scope_id

Ctx = grpc.aio.ServicerContext[Any, Any]


def _peer_settings(c: Checker, field: str,
                   peers: Mapping[str, resources_pb2.SessionPeerConfiguration]) -> PeerSettings:
    out: PeerSettings = {}
    for peer_id, config in peers.items():
        c.id(f"{field}[{peer_id!r}]", peer_id)
        out[peer_id] = (
            config.observe_me if config.HasField("observe_me") else None,
            config.observe_others if config.HasField("observe_others") else None,
        )
    return out


def _members(found: list[SessionPeer]) -> list[resources_pb2.SessionPeer]:
    return [convert.session_peer(m) for m in found]


class SessionServicer(rpc.SessionServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def GetOrCreateSession(self, request: pb.GetOrCreateSessionRequest,
                                 context: Ctx) -> pb.GetOrCreateSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            metadata = c.struct("metadata", request.metadata)
            c.configuration("configuration", request.configuration)
            peers = _peer_settings(c, "peers", request.peers)
            id_list(c, "scope_ids", request.scope_ids, scopes.MAX_SCOPES_PER_READ, scopes=True)
        found, created = await sessions.get_or_create(
            self.deps.pool, self.deps.settings, request.workspace_id, request.session_id,
            metadata, convert.to_dict(request.configuration), peers, list(request.scope_ids))
        return pb.GetOrCreateSessionResponse(session=convert.session(found), created=created)

    async def GetSession(self, request: pb.GetSessionRequest,
                         context: Ctx) -> pb.GetSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
        found = await sessions.require(self.deps.pool, request.workspace_id, request.session_id)
        return pb.GetSessionResponse(session=convert.session(found))

    async def ListSessions(self, request: pb.ListSessionsRequest,
                           context: Ctx) -> pb.ListSessionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await sessions.list_sessions(self.deps.pool, request.workspace_id, filters,
                                            request.reverse, size, request.page_token)
        return pb.ListSessionsResponse(sessions=[convert.session(s) for s in page.items],
                                       next_page_token=page.next_token)

    async def UpdateSession(self, request: pb.UpdateSessionRequest,
                            context: Ctx) -> pb.UpdateSessionResponse:
        s = request.session
        with checking() as c:
            c.id("session.workspace_id", s.workspace_id)
            c.id("session.id", s.id)
            c.struct("session.metadata", s.metadata)
            c.configuration("session.configuration", s.configuration)
            changes = common.mask_changes(s, request.update_mask, {"metadata", "configuration"},
                                          c, "update_mask")
        found = await sessions.update(self.deps.pool, s.workspace_id, s.id, changes)
        return pb.UpdateSessionResponse(session=convert.session(found))

    async def DeleteSession(self, request: pb.DeleteSessionRequest,
                            context: Ctx) -> pb.DeleteSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.request_id("request_id", request.request_id)
        return await sessions.delete(
            self.deps.pool, request.workspace_id, request.session_id,
            Retry(request.request_id, "DeleteSession", request, pb.DeleteSessionResponse))

    async def CloneSession(self, request: pb.CloneSessionRequest,
                           context: Ctx) -> pb.CloneSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("message_id", request.message_id, required=False)
            c.id("new_session_id", request.new_session_id, required=False)
            c.request_id("request_id", request.request_id)
        return await sessions.clone(
            self.deps.pool, request.workspace_id, request.session_id,
            request.new_session_id or new_id(), request.message_id,
            Retry(request.request_id, "CloneSession", request, pb.CloneSessionResponse),
            lambda clone: pb.CloneSessionResponse(session=convert.session(clone)))

    async def AddPeers(self, request: pb.AddPeersRequest, context: Ctx) -> pb.AddPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            peers = _peer_settings(c, "peers", request.peers)
            if not peers:
                c.fail("peers", "is required")
        current = await sessions.add_peers(self.deps.pool, self.deps.settings,
                                           request.workspace_id, request.session_id, peers)
        return pb.AddPeersResponse(peers=_members(current))

    async def SetPeers(self, request: pb.SetPeersRequest, context: Ctx) -> pb.SetPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            peers = _peer_settings(c, "peers", request.peers)
        current = await sessions.set_peers(self.deps.pool, self.deps.settings,
                                           request.workspace_id, request.session_id, peers)
        return pb.SetPeersResponse(peers=_members(current))

    async def RemovePeers(self, request: pb.RemovePeersRequest,
                          context: Ctx) -> pb.RemovePeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            if not request.peer_ids:
                c.fail("peer_ids", "is required")
            for i, peer_id in enumerate(request.peer_ids):
                c.id(f"peer_ids[{i}]", peer_id)
        current = await sessions.remove_peers(self.deps.pool, request.workspace_id,
                                              request.session_id, list(request.peer_ids))
        return pb.RemovePeersResponse(peers=_members(current))

    async def ListSessionPeers(self, request: pb.ListSessionPeersRequest,
                               context: Ctx) -> pb.ListSessionPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            size = common.page_size(self.deps, request.page_size, c)
        page = await sessions.list_members(self.deps.pool, request.workspace_id,
                                           request.session_id, request.include_inactive, size,
                                           request.page_token)
        return pb.ListSessionPeersResponse(peers=_members(page.items),
                                           next_page_token=page.next_token)

    async def GetSessionPeerConfig(self, request: pb.GetSessionPeerConfigRequest,
                                   context: Ctx) -> pb.GetSessionPeerConfigResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("peer_id", request.peer_id)
        found = await sessions.member(self.deps.pool, request.workspace_id, request.session_id,
                                      request.peer_id)
        return pb.GetSessionPeerConfigResponse(configuration=convert.session_peer_config(found))

    async def SetSessionPeerConfig(self, request: pb.SetSessionPeerConfigRequest,
                                   context: Ctx) -> pb.SetSessionPeerConfigResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("peer_id", request.peer_id)
        cfg = request.configuration
        found = await sessions.configure_member(
            self.deps.pool, self.deps.settings, request.workspace_id, request.session_id,
            request.peer_id, cfg.observe_me if cfg.HasField("observe_me") else None,
            cfg.observe_others if cfg.HasField("observe_others") else None)
        return pb.SetSessionPeerConfigResponse(configuration=convert.session_peer_config(found))

    async def GetContext(self, request: pb.GetContextRequest,
                         context: Ctx) -> pb.GetContextResponse:
        limit = self.deps.settings.app.get_context_max_tokens
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.range("tokens", request.tokens, 0, limit)
            c.id("peer_target", request.peer_target, required=False)
            c.id("peer_perspective", request.peer_perspective, required=False)
            if request.peer_perspective and not request.peer_target:
                c.fail("peer_perspective", "needs peer_target")
            c.text("search_query", request.search_query, max_chars=10_000, min_chars=0)
            c.range("search_top_k", request.search_top_k, 0, 100)
            c.range("search_max_distance", request.search_max_distance, 0, 1)
            c.range("max_conclusions", request.max_conclusions, 0, 100)
            scope_id(c, "scope_id", request.scope_id, required=False)
            id_list(c, "session_ids", request.session_ids, scopes.MAX_ALLOWLIST)
            allowlist = list(request.session_ids) or None
            if request.scope_id and request.peer_perspective:
                c.fail("scope_id", "cannot be combined with peer_perspective")
            if allowlist is not None:
                if request.session_id not in allowlist:
                    c.fail("session_ids", "must include session_id")
                if request.scope_id:
                    c.fail("session_ids", "cannot be combined with scope_id")
                if request.limit_to_session:
                    c.fail("session_ids", "cannot be combined with limit_to_session")
            if (request.scope_id or allowlist) and not request.peer_target:
                c.fail("peer_target", "is required with scope_id or session_ids")
        boundary = await scopes.boundary(
            self.deps.pool, request.workspace_id,
            scopes=[request.scope_id] if request.scope_id else [], sessions=allowlist)
        rep = None
        if request.peer_target:
            rep = RepresentationQuery(
                workspace_id=request.workspace_id,
                observer_id=request.peer_perspective or request.peer_target,
                observed_id=request.peer_target,
                session_id=request.session_id if request.limit_to_session else None,
                search_query=request.search_query, search_top_k=request.search_top_k,
                search_max_distance=request.search_max_distance,
                include_most_frequent=request.include_most_frequent,
                max_conclusions=request.max_conclusions or DEFAULT_MAX, sessions=boundary)
        ctx = await build_context(
            self.deps.pool, self.deps.embedder, workspace_id=request.workspace_id,
            session_id=request.session_id, budget=request.tokens or limit,
            include_summary=request.summary if request.HasField("summary") else True,
            representation=rep)
        return pb.GetContextResponse(
            session_id=request.session_id, messages=[convert.message(m) for m in ctx.messages],
            summary=convert.summary(ctx.summary), peer_representation=ctx.representation,
            peer_card=ctx.peer_card)

    async def GetSummaries(self, request: pb.GetSummariesRequest,
                           context: Ctx) -> pb.GetSummariesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
        found = await sessions.summaries(self.deps.pool, request.workspace_id,
                                         request.session_id)
        return pb.GetSummariesResponse(session_id=request.session_id,
                                       short_summary=convert.summary(found.get("short")),
                                       long_summary=convert.summary(found.get("long")))
