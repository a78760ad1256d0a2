"""/v3/workspaces/{workspace_id}/sessions: sessions, membership, context, summaries, search."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from honcho_grpc_proto.v1 import resources_pb2, search_pb2
from honcho_grpc_proto.v1 import session_pb2 as pb

from honcho_grpc.domain import peers, scopes, sessions, upsert
from honcho_grpc.domain.context import build_context
from honcho_grpc.domain.representation import DEFAULT_MAX, RepresentationQuery
from honcho_grpc.http import shapes
from honcho_grpc.http.body import StrictJsonRoute
from honcho_grpc.http.common import (
    SESSION_FIELDS,
    Capture,
    Paging,
    authorize,
    deps,
    exclusive,
    once,
    or_empty,
    paginate,
    renamed,
    scope_id_of,
    scope_ids,
)
from honcho_grpc.http.search import run_search
from honcho_grpc.http.workspaces import changes_of
from honcho_grpc.ids import new_id
from honcho_grpc.model import PeerSettings, Session
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking

router = APIRouter(prefix="/v3/workspaces/{workspace_id}/sessions", route_class=StrictJsonRoute)
Json = dict[str, Any]


def _ids(c: Checker, workspace_id: str, session_id: str) -> None:
    c.id("workspace_id", workspace_id)
    c.id("session_id", session_id)


def _peer_settings(c: Checker, peers_in: dict[str, shapes.SessionPeerConfig] | None
                   ) -> PeerSettings:
    out: PeerSettings = {}
    for peer_id, config in (peers_in or {}).items():
        c.id(f"peers[{peer_id!r}]", peer_id)
        out[peer_id] = (config.observe_me, config.observe_others)
    return out


@router.post("")
async def get_or_create(workspace_id: str, body: shapes.CreateSession, request: Request,
                        d: Deps = Depends(deps)) -> JSONResponse:
    await authorize(request, "SessionService/GetOrCreateSession", pb.GetOrCreateSessionRequest(
        workspace_id=workspace_id, session_id=body.id, scope_ids=body.scopes or [],
        peers={peer_id: resources_pb2.SessionPeerConfiguration() for peer_id in body.peers or {}}))
    with checking() as c:
        _ids(c, workspace_id, body.id)
        changes = changes_of(c, body)
        members = _peer_settings(c, body.peers)
        joining = scope_ids(c, "scopes", body.scopes) if body.scopes else []
    found, created = await upsert.session(d.pool, d.settings, workspace_id, body.id, changes,
                                          members, joining)
    return JSONResponse(shapes.session(found), status_code=201 if created else 200)


@router.post("/list")
async def list_sessions(workspace_id: str, request: Request,
                        body: shapes.ListBody | None = None, paging: Paging = Depends(),
                        d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/ListSessions",
                    pb.ListSessionsRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    filters = renamed(body.filters if body else None, SESSION_FIELDS)
    return await paginate(
        paging, lambda size, token: sessions.list_sessions(d.pool, workspace_id, filters,
                                                           paging.reverse, size, token),
        shapes.session)


@router.put("/{session_id}")
async def update(workspace_id: str, session_id: str, body: shapes.Update, request: Request,
                 d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/UpdateSession", pb.UpdateSessionRequest(
        session=resources_pb2.Session(workspace_id=workspace_id, id=session_id)))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        changes = changes_of(c, body)
    return shapes.session(await sessions.update(d.pool, workspace_id, session_id, changes))


@router.delete("/{session_id}", status_code=202)
async def delete(workspace_id: str, session_id: str, request: Request,
                 d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/DeleteSession", pb.DeleteSessionRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
    await sessions.delete(d.pool, workspace_id, session_id, once("DeleteSession"))
    return {"message": f"Session {session_id} deleted"}


@router.post("/{session_id}/clone", status_code=201)
async def clone(workspace_id: str, session_id: str, request: Request, message_id: str = "",
                d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/CloneSession", pb.CloneSessionRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        c.id("message_id", message_id, required=False)
    made: Capture[Session] = Capture()
    await sessions.clone(d.pool, workspace_id, session_id, new_id(), message_id,
                         once("CloneSession"), made)
    return shapes.session(made.value)


async def _session(d: Deps, workspace_id: str, session_id: str) -> Json:
    return shapes.session(await sessions.require(d.pool, workspace_id, session_id))


@router.post("/{session_id}/peers")
async def add_peers(workspace_id: str, session_id: str,
                    body: dict[str, shapes.SessionPeerConfig], request: Request,
                    d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/AddPeers", pb.AddPeersRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        members = _peer_settings(c, body)
        if not members:
            c.fail("peers", "is required")
    await sessions.add_peers(d.pool, d.settings, workspace_id, session_id, members)
    return await _session(d, workspace_id, session_id)


@router.put("/{session_id}/peers")
async def set_peers(workspace_id: str, session_id: str,
                    body: dict[str, shapes.SessionPeerConfig], request: Request,
                    d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/SetPeers", pb.SetPeersRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        members = _peer_settings(c, body)
    await sessions.set_peers(d.pool, d.settings, workspace_id, session_id, members)
    return await _session(d, workspace_id, session_id)


@router.delete("/{session_id}/peers")
async def remove_peers(workspace_id: str, session_id: str, request: Request,
                       body: list[str] = Body(...), d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/RemovePeers", pb.RemovePeersRequest(
        workspace_id=workspace_id, session_id=session_id, peer_ids=body))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        if not body:
            c.fail("peer_ids", "is required")
        for i, peer_id in enumerate(body):
            c.id(f"peer_ids[{i}]", peer_id)
    await sessions.remove_peers(d.pool, workspace_id, session_id, body)
    return await _session(d, workspace_id, session_id)


@router.get("/{session_id}/peers")
async def list_members(workspace_id: str, session_id: str, request: Request,
                       paging: Paging = Depends(), d: Deps = Depends(deps)) -> Json:
    """The active members, as peers (Honcho answers Peer objects here)."""
    await authorize(request, "SessionService/ListSessionPeers", pb.ListSessionPeersRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
    page = await paginate(
        paging, lambda size, token: sessions.list_members(d.pool, workspace_id, session_id,
                                                          False, size, token),
        lambda m: {"id": m.peer_id})
    page["items"] = [shapes.peer(await peers.get(d.pool, workspace_id, item["id"]))
                     for item in page["items"]]
    return page


@router.get("/{session_id}/peers/{peer_id}/config")
async def member_config(workspace_id: str, session_id: str, peer_id: str, request: Request,
                        d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/GetSessionPeerConfig",
                    pb.GetSessionPeerConfigRequest(workspace_id=workspace_id,
                                                   session_id=session_id, peer_id=peer_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        c.id("peer_id", peer_id)
    return shapes.member_config(await sessions.member(d.pool, workspace_id, session_id,
                                                      peer_id))


@router.put("/{session_id}/peers/{peer_id}/config", status_code=204)
async def set_member_config(workspace_id: str, session_id: str, peer_id: str,
                            body: shapes.SessionPeerConfig, request: Request,
                            d: Deps = Depends(deps)) -> Response:
    await authorize(request, "SessionService/SetSessionPeerConfig",
                    pb.SetSessionPeerConfigRequest(workspace_id=workspace_id,
                                                   session_id=session_id, peer_id=peer_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
        c.id("peer_id", peer_id)
    await sessions.configure_member(d.pool, d.settings, workspace_id, session_id, peer_id,
                                    body.observe_me, body.observe_others)
    return Response(status_code=204)


@router.get("/{session_id}/context")
async def get_context(workspace_id: str, session_id: str, request: Request,
                      tokens: int | None = Query(None, ge=1), summary: bool = True,
                      peer_target: str = "", peer_perspective: str = "",
                      limit_to_session: bool = False, search_query: str = "",
                      search_top_k: int | None = Query(None, ge=1, le=100),
                      search_max_distance: float | None = Query(None, ge=0.0, le=1.0),
                      include_most_frequent: bool = False,
                      max_conclusions: int | None = Query(None, ge=1, le=100),
                      scope: str = "", sessions_: list[str] | None = Query(None, alias="sessions"),
                      d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/GetContext", pb.GetContextRequest(
        workspace_id=workspace_id, session_id=session_id, peer_target=peer_target,
        peer_perspective=peer_perspective, scope_id=scope, session_ids=sessions_ or []))
    limit = d.settings.app.get_context_max_tokens
    with checking() as c:
        _ids(c, workspace_id, session_id)
        c.range("tokens", tokens or 0, 0, limit)
        c.id("peer_target", peer_target, required=False)
        c.id("peer_perspective", peer_perspective, required=False)
        if peer_perspective and not peer_target:
            c.fail("peer_perspective", "needs peer_target")
        c.text("search_query", search_query, max_chars=10_000, min_chars=0)
        # A scope or an allowlist confines the target's representation: there is none
        # without a target. A scope is the view's source, so no perspective beside it.
        if scope:
            scope_id_of(c, "scope", scope)
            exclusive(c, peer_perspective=peer_perspective, scope=scope)
        if sessions_ is not None:
            for i, allowed in enumerate(sessions_):
                c.id(f"sessions[{i}]", allowed)
            if len(sessions_) > scopes.MAX_ALLOWLIST:
                c.fail("sessions", f"names more than {scopes.MAX_ALLOWLIST} sessions")
            if session_id not in sessions_:
                c.fail("sessions", "must include this session")
            exclusive(c, scope=scope, sessions=True)
            exclusive(c, limit_to_session=limit_to_session, sessions=True)
        if (scope or sessions_ is not None) and not peer_target:
            c.fail("peer_target", "is required with scope or sessions")
    boundary = await scopes.boundary(d.pool, workspace_id, scopes=[scope] if scope else [],
                                     sessions=sessions_)
    rep = None
    if peer_target:
        rep = RepresentationQuery(
            workspace_id=workspace_id, observer_id=peer_perspective or peer_target,
            observed_id=peer_target, session_id=session_id if limit_to_session else None,
            search_query=search_query, search_top_k=search_top_k or 0,
            search_max_distance=search_max_distance or 0.0,
            include_most_frequent=include_most_frequent,
            max_conclusions=max_conclusions or DEFAULT_MAX, sessions=boundary)
    ctx = await build_context(d.pool, d.embedder, workspace_id=workspace_id,
                              session_id=session_id, budget=tokens or limit,
                              include_summary=summary, representation=rep)
    return {"id": session_id, "messages": [shapes.message(m) for m in ctx.messages],
            "summary": shapes.summary(ctx.summary),
            "peer_representation": ctx.representation or None,
            "peer_card": ctx.peer_card or None}


@router.get("/{session_id}/summaries")
async def summaries(workspace_id: str, session_id: str, request: Request,
                    d: Deps = Depends(deps)) -> Json:
    await authorize(request, "SessionService/GetSummaries", pb.GetSummariesRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        _ids(c, workspace_id, session_id)
    found = await or_empty(sessions.summaries(d.pool, workspace_id, session_id),
                           "SESSION_NOT_FOUND", {})
    return {"id": session_id, "short_summary": shapes.summary(found.get("short")),
            "long_summary": shapes.summary(found.get("long"))}


@router.post("/{session_id}/search")
async def search(workspace_id: str, session_id: str, body: shapes.SearchBody, request: Request,
                 d: Deps = Depends(deps)) -> list[Json]:
    await authorize(request, "SearchService/SearchMessages", search_pb2.SearchMessagesRequest(
        workspace_id=workspace_id, session_id=session_id, scope_id=body.scope or ""))
    return await run_search(d, workspace_id, body, session_id=session_id)
