"""SessionService: sessions, membership, context and summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from honcho_grpc_proto.v1 import resources_pb2
from honcho_grpc_proto.v1 import session_pb2 as pb
from honcho_grpc_proto.v1 import session_pb2_grpc as rpc

from honcho_grpc.domain.context import build_context
from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.domain.messages import announce_created
from honcho_grpc.domain.representation import DEFAULT_MAX, RepresentationQuery
from honcho_grpc.errors import HonchoError, already_exists
from honcho_grpc.ids import new_id
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking
from honcho_grpc.store import members, memory, resources
from honcho_grpc.store.members import PeerSettings

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


class SessionServicer(rpc.SessionServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _members(self, conn: Any, workspace_id: str,
                       session_id: str) -> list[resources_pb2.SessionPeer]:
        return [convert.session_peer(r)
                for r in await members.active_members(conn, workspace_id, session_id)]

    async def _check_observer_limit(self, conn: Any, workspace_id: str, session_id: str) -> None:
        limit = self.deps.settings.app.session_observers_limit
        if await members.count_observers(conn, workspace_id, session_id) > limit:
            raise HonchoError(
                message=f"at most {limit} members may have observe_others in a session",
                reason="OBSERVER_LIMIT_EXCEEDED", metadata={"limit": str(limit)},
                code=grpc.StatusCode.FAILED_PRECONDITION)

    async def _require_session(self, conn: Any, workspace_id: str, session_id: str) -> Any:
        row = await resources.get_session(conn, workspace_id, session_id)
        return common.require(row, "session", workspaceId=workspace_id, sessionId=session_id)

    async def GetOrCreateSession(self, request: pb.GetOrCreateSessionRequest,
                                 context: Ctx) -> pb.GetOrCreateSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            metadata = c.struct("metadata", request.metadata)
            c.configuration("configuration", request.configuration)
            peers = _peer_settings(c, "peers", request.peers)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            row, created = await resources.get_or_create_session(
                conn, request.workspace_id, request.session_id, metadata,
                convert.to_dict(request.configuration))
            await members.add_peers(conn, request.workspace_id, request.session_id, peers)
            await self._check_observer_limit(conn, request.workspace_id, request.session_id)
        return pb.GetOrCreateSessionResponse(session=convert.session(row), created=created)

    async def GetSession(self, request: pb.GetSessionRequest,
                         context: Ctx) -> pb.GetSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
        row = await self._require_session(self.deps.pool, request.workspace_id,
                                          request.session_id)
        return pb.GetSessionResponse(session=convert.session(row))

    async def ListSessions(self, request: pb.ListSessionsRequest,
                           context: Ctx) -> pb.ListSessionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await resources.list_sessions(self.deps.pool, request.workspace_id, filters,
                                             request.reverse, size, request.page_token)
        return pb.ListSessionsResponse(sessions=[convert.session(r) for r in page.rows],
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
        async with self.deps.pool.acquire() as conn:
            row = await resources.update_session(conn, s.workspace_id, s.id, changes)
        common.require(row, "session", workspaceId=s.workspace_id, sessionId=s.id)
        return pb.UpdateSessionResponse(session=convert.session(row))

    async def DeleteSession(self, request: pb.DeleteSessionRequest,
                            context: Ctx) -> pb.DeleteSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.request_id("request_id", request.request_id)

        async def write(conn: Any) -> pb.DeleteSessionResponse:
            found = await resources.delete_session(conn, request.workspace_id,
                                                   request.session_id)
            common.check_found(found, "session", workspaceId=request.workspace_id,
                               sessionId=request.session_id)
            return pb.DeleteSessionResponse()

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="DeleteSession",
                               request=request, response_type=pb.DeleteSessionResponse,
                               write=write)

    async def CloneSession(self, request: pb.CloneSessionRequest,
                           context: Ctx) -> pb.CloneSessionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("message_id", request.message_id, required=False)
            c.id("new_session_id", request.new_session_id, required=False)
            c.request_id("request_id", request.request_id)
        new_id_ = request.new_session_id or new_id()

        async def write(conn: Any) -> pb.CloneSessionResponse:
            row = await clone_session(conn, request.workspace_id, request.session_id, new_id_,
                                      request.message_id)
            return pb.CloneSessionResponse(session=convert.session(row))

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="CloneSession",
                               request=request, response_type=pb.CloneSessionResponse,
                               write=write)

    async def AddPeers(self, request: pb.AddPeersRequest, context: Ctx) -> pb.AddPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            peers = _peer_settings(c, "peers", request.peers)
            if not peers:
                c.fail("peers", "is required")
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await self._require_session(conn, request.workspace_id, request.session_id)
            await members.add_peers(conn, request.workspace_id, request.session_id, peers)
            await self._check_observer_limit(conn, request.workspace_id, request.session_id)
            current = await self._members(conn, request.workspace_id, request.session_id)
        return pb.AddPeersResponse(peers=current)

    async def SetPeers(self, request: pb.SetPeersRequest, context: Ctx) -> pb.SetPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            peers = _peer_settings(c, "peers", request.peers)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await self._require_session(conn, request.workspace_id, request.session_id)
            await members.set_peers(conn, request.workspace_id, request.session_id, peers)
            await self._check_observer_limit(conn, request.workspace_id, request.session_id)
            current = await self._members(conn, request.workspace_id, request.session_id)
        return pb.SetPeersResponse(peers=current)

    async def RemovePeers(self, request: pb.RemovePeersRequest,
                          context: Ctx) -> pb.RemovePeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            if not request.peer_ids:
                c.fail("peer_ids", "is required")
            for i, peer_id in enumerate(request.peer_ids):
                c.id(f"peer_ids[{i}]", peer_id)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await self._require_session(conn, request.workspace_id, request.session_id)
            await members.remove_peers(conn, request.workspace_id, request.session_id,
                                       list(request.peer_ids))
            current = await self._members(conn, request.workspace_id, request.session_id)
        return pb.RemovePeersResponse(peers=current)

    async def ListSessionPeers(self, request: pb.ListSessionPeersRequest,
                               context: Ctx) -> pb.ListSessionPeersResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            size = common.page_size(self.deps, request.page_size, c)
        await self._require_session(self.deps.pool, request.workspace_id, request.session_id)
        page = await members.list_members(self.deps.pool, request.workspace_id,
                                          request.session_id, request.include_inactive, size,
                                          request.page_token)
        return pb.ListSessionPeersResponse(peers=[convert.session_peer(r) for r in page.rows],
                                           next_page_token=page.next_token)

    async def GetSessionPeerConfig(self, request: pb.GetSessionPeerConfigRequest,
                                   context: Ctx) -> pb.GetSessionPeerConfigResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("peer_id", request.peer_id)
        row = await members.get_member(self.deps.pool, request.workspace_id,
                                       request.session_id, request.peer_id)
        common.require(row, "session_peer", workspaceId=request.workspace_id,
                       sessionId=request.session_id, peerId=request.peer_id)
        return pb.GetSessionPeerConfigResponse(
            configuration=convert.session_peer(row).configuration)

    async def SetSessionPeerConfig(self, request: pb.SetSessionPeerConfigRequest,
                                   context: Ctx) -> pb.SetSessionPeerConfigResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("peer_id", request.peer_id)
        cfg = request.configuration
        async with self.deps.pool.acquire() as conn, conn.transaction():
            row = await members.set_member_config(
                conn, request.workspace_id, request.session_id, request.peer_id,
                cfg.observe_me if cfg.HasField("observe_me") else None,
                cfg.observe_others if cfg.HasField("observe_others") else None)
            common.require(row, "session_peer", workspaceId=request.workspace_id,
                           sessionId=request.session_id, peerId=request.peer_id)
            await self._check_observer_limit(conn, request.workspace_id, request.session_id)
        return pb.SetSessionPeerConfigResponse(
            configuration=convert.session_peer(row).configuration)

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
                max_conclusions=request.max_conclusions or DEFAULT_MAX)
        ctx = await build_context(
            self.deps.pool, self.deps.embedder, workspace_id=request.workspace_id,
            session_id=request.session_id, budget=request.tokens or limit,
            include_summary=request.summary if request.HasField("summary") else True,
            representation=rep)
        common.check_found(ctx.session_found, "session", workspaceId=request.workspace_id,
                           sessionId=request.session_id)
        return pb.GetContextResponse(
            session_id=request.session_id, messages=[convert.message(m) for m in ctx.messages],
            summary=convert.summary(ctx.summary), peer_representation=ctx.representation,
            peer_card=ctx.peer_card)

    async def GetSummaries(self, request: pb.GetSummariesRequest,
                           context: Ctx) -> pb.GetSummariesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
        await self._require_session(self.deps.pool, request.workspace_id, request.session_id)
        found = await memory.summaries(self.deps.pool, request.workspace_id, request.session_id)
        return pb.GetSummariesResponse(session_id=request.session_id,
                                       short_summary=convert.summary(found.get("short")),
                                       long_summary=convert.summary(found.get("long")))


async def clone_session(conn: Any, workspace_id: str, source_id: str, target_id: str,
                        up_to_message_id: str) -> Any:
    """Copy metadata, configuration, members and messages (up to one, inclusive). Derived
    memory is not copied; copied messages join the embedding backlog but cause no reasoning."""
    source = await resources.get_session(conn, workspace_id, source_id)
    common.require(source, "session", workspaceId=workspace_id, sessionId=source_id)
    cutoff = None
    if up_to_message_id:
        cutoff = await conn.fetchval(
            "SELECT seq FROM messages WHERE workspace_id = $1 AND session_id = $2 "
            "AND message_id = $3", workspace_id, source_id, up_to_message_id)
        common.require(cutoff, "message", workspaceId=workspace_id, sessionId=source_id,
                       messageId=up_to_message_id)
    row = await conn.fetchrow(
        "INSERT INTO sessions (workspace_id, session_id, metadata, configuration) "
        "SELECT workspace_id, $3, metadata, configuration FROM sessions "
        "WHERE workspace_id = $1 AND session_id = $2 ON CONFLICT DO NOTHING RETURNING *",
        workspace_id, source_id, target_id)
    if row is None:
        raise already_exists("session", workspaceId=workspace_id, sessionId=target_id)
    await conn.execute(
        "INSERT INTO session_peers (workspace_id, session_id, peer_id, observe_me, "
        "observe_others, joined_at, left_at) SELECT workspace_id, $3, peer_id, observe_me, "
        "observe_others, joined_at, left_at FROM session_peers "
        "WHERE workspace_id = $1 AND session_id = $2", workspace_id, source_id, target_id)
    copied = await conn.fetch(
        """
        INSERT INTO messages (workspace_id, message_id, session_id, peer_id, seq, content,
                              metadata, configuration, internal_metadata, token_count, created_at)
        SELECT workspace_id, $4 || lpad(seq::text, 10, '0'), $3, peer_id, seq, content,
               metadata, configuration, internal_metadata, token_count, created_at
        FROM messages WHERE workspace_id = $1 AND session_id = $2
          AND ($5::bigint IS NULL OR seq <= $5)
        RETURNING message_id, seq, peer_id
        """,
        workspace_id, source_id, target_id, new_id()[:10], cutoff)
    await announce_created(conn, workspace_id, target_id, copied)
    last = max((r["seq"] for r in copied), default=0)
    row = await conn.fetchrow(
        "UPDATE sessions SET last_seq = $3 WHERE workspace_id = $1 AND session_id = $2 "
        "RETURNING *", workspace_id, target_id, last)
    await conn.execute(
        "INSERT INTO embedding_backlog (workspace_id, message_id) "
        "SELECT $1, unnest($2::text[])", workspace_id, [r["message_id"] for r in copied])
    return row
