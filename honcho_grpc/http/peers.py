"""/v3/workspaces/{workspace_id}/peers: peers, their sessions, chat, cards, representations,
context and search."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from honcho_grpc_proto.v1 import dialectic_pb2, resources_pb2, search_pb2
from honcho_grpc_proto.v1 import peer_pb2 as pb

from honcho_grpc.domain import peers, questions, scopes, upsert
from honcho_grpc.domain.dialectic import Answer, Question, stream_answer
from honcho_grpc.domain.representation import DEFAULT_MAX, RepresentationQuery, render
from honcho_grpc.domain.response_format import schema_problem
from honcho_grpc.http import shapes
from honcho_grpc.http.body import StrictJsonRoute
from honcho_grpc.http.common import (
    SESSION_FIELDS,
    Paging,
    allowlist,
    authorize,
    deps,
    exclusive,
    named,
    named_sessions,
    paginate,
    renamed,
    scope_ids,
    while_connected,
)
from honcho_grpc.http.errors import status_and_detail
from honcho_grpc.http.search import run_search
from honcho_grpc.http.workspaces import changes_of
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v3/workspaces/{workspace_id}/peers", route_class=StrictJsonRoute)
Json = dict[str, Any]


@router.post("")
async def get_or_create(workspace_id: str, body: shapes.CreateWithId, request: Request,
                        d: Deps = Depends(deps)) -> JSONResponse:
    await authorize(request, "PeerService/GetOrCreatePeer", pb.GetOrCreatePeerRequest(
        workspace_id=workspace_id, peer_id=body.id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("id", body.id)
        changes = changes_of(c, body, resources_pb2.PeerConfiguration)
    found, created = await upsert.peer(d.pool, workspace_id, body.id, changes)
    return JSONResponse(shapes.peer(found), status_code=201 if created else 200)


@router.post("/list")
async def list_peers(workspace_id: str, request: Request, body: shapes.ListBody | None = None,
                     paging: Paging = Depends(), d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/ListPeers",
                    pb.ListPeersRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    filters = body.filters if body else None
    return await paginate(
        paging, lambda size, token: peers.list_peers(d.pool, workspace_id, filters,
                                                     paging.reverse, size, token),
        shapes.peer)


@router.put("/{peer_id}")
async def update(workspace_id: str, peer_id: str, body: shapes.Update, request: Request,
                 d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/UpdatePeer", pb.UpdatePeerRequest(
        peer=resources_pb2.Peer(workspace_id=workspace_id, id=peer_id)))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("peer_id", peer_id)
        changes = changes_of(c, body, resources_pb2.PeerConfiguration)
    return shapes.peer(await peers.update(d.pool, workspace_id, peer_id, changes))


@router.post("/{peer_id}/sessions")
async def sessions_of(workspace_id: str, peer_id: str, request: Request,
                      body: shapes.ListBody | None = None, paging: Paging = Depends(),
                      d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/ListPeerSessions", pb.ListPeerSessionsRequest(
        workspace_id=workspace_id, peer_id=peer_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("peer_id", peer_id)
    filters = renamed(body.filters if body else None, SESSION_FIELDS)
    return await paginate(
        paging, lambda size, token: peers.sessions_of(d.pool, workspace_id, peer_id, filters,
                                                      paging.reverse, size, token),
        shapes.session)


@router.post("/{peer_id}/chat", response_model=None)
async def chat(workspace_id: str, peer_id: str, body: shapes.ChatBody, request: Request,
               d: Deps = Depends(deps)) -> Json | StreamingResponse:
    await authorize(request, "DialecticService/Chat", dialectic_pb2.ChatRequest(
        query=dialectic_pb2.ChatQuery(workspace_id=workspace_id, peer_id=peer_id,
                                      target_id=body.target or "",
                                      session_id=body.session_id or "",
                                      scope_ids=named(body.scope),
                                      session_ids=named_sessions(body.filters))))
    scope_ids_, session_ids = _boundary_options(body.scope, body.filters, body.session_id)
    q = await _question(d, workspace_id, peer_id, body, scope_ids_, session_ids)
    answer = Answer()
    pieces = stream_answer(d.pool, d.embedder, d.llm, q, answer)
    if body.stream:
        # Wait for the first piece: a failure before it is still answered with its status.
        first = await while_connected(request, anext(pieces, None))
        return StreamingResponse(_events(first, pieces), media_type="text/event-stream")
    return {"content": "".join(await while_connected(request, _collect(pieces)))}


async def _collect(pieces: AsyncIterator[str]) -> list[str]:
    return [p async for p in pieces]


def _boundary_options(scope: str | list[str] | None, filters: Json | None,
                      session_id: str | None) -> tuple[list[str], list[str] | None]:
    """The scopes and the session allowlist a chat or representation names; at most one of
    them and `session_id`."""
    with checking() as c:
        scope_ids_ = scope_ids(c, "scope", scope)
        session_ids = allowlist(c, filters)
        exclusive(c, scope=scope_ids_, session_id=session_id)
        exclusive(c, filters=session_ids, session_id=session_id)
        exclusive(c, scope=scope_ids_, filters=session_ids)
    return scope_ids_, session_ids


async def _question(d: Deps, workspace_id: str, peer_id: str, body: shapes.ChatBody,
                    scope_ids_: list[str], session_ids: list[str] | None) -> Question:
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("peer_id", peer_id)
        c.id("target", body.target or "", required=False)
        c.id("session_id", body.session_id or "", required=False)
        c.text("query", body.query, max_chars=questions.MAX_QUERY_CHARS)
        problem = schema_problem(body.response_format) if body.response_format else None
        if problem:
            c.fail("response_format", problem)
    # Honcho creates the asking peer on first use; the target and session must exist.
    return await questions.pose(d.pool, workspace_id, peer_id, body.query,
                                target=body.target or "", session_id=body.session_id or "",
                                level=body.reasoning_level,
                                response_format=body.response_format, create_asker=True,
                                scope_ids=scope_ids_, session_ids=session_ids)


async def _events(first: str | None, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """Honcho's SSE: `data: {"delta": {"content": ...}, "done": false}` per piece, then
    `data: {"done": true}`. A failure once the answer has begun (its status is sent) ends
    the stream with an `error` event in place of `done`: Honcho's SDKs skip an event that
    has neither, and a reader can tell a cut answer from a whole one."""
    try:
        if first is not None:
            yield _event({"delta": {"content": first}, "done": False})
            async for piece in pieces:
                yield _event({"delta": {"content": piece}, "done": False})
    except Exception as exc:
        log.exception("chat stream failed")
        status, detail = status_and_detail(exc)
        yield f"event: error\n{_event({'detail': detail, 'status': status})}"
        return
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
    yield _event({"done": True})


def _event(data: Json) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _representation_query(workspace_id: str, peer_id: str, target: str | None,
                          session_id: str | None, search_query: str | None,
                          search_top_k: int | None, search_max_distance: float | None,
                          include_most_frequent: bool, max_conclusions: int | None,
                          sessions: frozenset[str] | None = None) -> RepresentationQuery:
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("peer_id", peer_id)
        c.id("target", target or "", required=False)
        c.id("session_id", session_id or "", required=False)
        c.text("search_query", search_query or "", max_chars=10_000, min_chars=0)
    return RepresentationQuery(
        workspace_id=workspace_id, observer_id=peer_id, observed_id=target or peer_id,
        session_id=session_id or None, search_query=search_query or "",
        search_top_k=search_top_k or 0, search_max_distance=search_max_distance or 0.0,
        include_most_frequent=include_most_frequent,
        max_conclusions=max_conclusions or DEFAULT_MAX, sessions=sessions)


@router.post("/{peer_id}/representation")
async def representation(workspace_id: str, peer_id: str, body: shapes.RepresentationBody,
                         request: Request, d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/GetRepresentation", pb.GetRepresentationRequest(
        workspace_id=workspace_id, peer_id=peer_id, target_id=body.target or "",
        session_id=body.session_id or "", scope_ids=named(body.scope),
        session_ids=named_sessions(body.filters)))
    scope_ids_, session_ids = _boundary_options(body.scope, body.filters, body.session_id)
    boundary = await scopes.boundary(d.pool, workspace_id, scopes=scope_ids_,
                                     sessions=session_ids)
    q = _representation_query(workspace_id, peer_id, body.target, body.session_id,
                              body.search_query, body.search_top_k, body.search_max_distance,
                              bool(body.include_most_frequent), body.max_conclusions,
                              boundary)
    found = await peers.representation(d.pool, d.embedder, q)
    return {"representation": render(found)}


@router.get("/{peer_id}/card")
async def get_card(workspace_id: str, peer_id: str, request: Request, target: str = "",
                   d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/GetPeerCard", pb.GetPeerCardRequest(
        workspace_id=workspace_id, peer_id=peer_id, target_id=target))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("peer_id", peer_id)
        c.id("target", target, required=False)
    card = await peers.card(d.pool, workspace_id, peer_id, target or peer_id)
    return {"peer_card": card.entries if card else None}


@router.put("/{peer_id}/card")
async def set_card(workspace_id: str, peer_id: str, body: shapes.CardBody, request: Request,
                   target: str = "", d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/SetPeerCard", pb.SetPeerCardRequest(
        workspace_id=workspace_id, peer_id=peer_id, target_id=target))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("peer_id", peer_id)
        c.id("target", target, required=False)
        if len(body.peer_card) > peers.MAX_CARD_ENTRIES:
            c.fail("peer_card", f"holds more than {peers.MAX_CARD_ENTRIES} entries")
        for i, entry in enumerate(body.peer_card):
            c.text(f"peer_card[{i}]", entry, max_chars=peers.MAX_CARD_ENTRY_CHARS)
    card = await peers.set_card(d.pool, workspace_id, peer_id, target or peer_id,
                                body.peer_card)
    return {"peer_card": card.entries}


@router.get("/{peer_id}/context")
async def context(workspace_id: str, peer_id: str, request: Request, target: str = "",
                  search_query: str = "", search_top_k: int | None = Query(None, ge=1, le=100),
                  search_max_distance: float | None = Query(None, ge=0.0, le=1.0),
                  include_most_frequent: bool = True,
                  max_conclusions: int | None = Query(None, ge=1, le=100),
                  d: Deps = Depends(deps)) -> Json:
    await authorize(request, "PeerService/GetPeerContext", pb.GetPeerContextRequest(
        workspace_id=workspace_id, peer_id=peer_id, target_id=target))
    q = _representation_query(workspace_id, peer_id, target, None, search_query, search_top_k,
                              search_max_distance, include_most_frequent, max_conclusions)
    found, card = await peers.context(d.pool, d.embedder, q)
    return {"peer_id": q.observer_id, "target_id": q.observed_id,
            "representation": render(found), "peer_card": card.entries if card else None}


@router.post("/{peer_id}/search")
async def search(workspace_id: str, peer_id: str, body: shapes.SearchBody, request: Request,
                 d: Deps = Depends(deps)) -> list[Json]:
    await authorize(request, "SearchService/SearchMessages", search_pb2.SearchMessagesRequest(
        workspace_id=workspace_id, peer_id=peer_id, scope_id=body.scope or ""))
    return await run_search(d, workspace_id, body, peer_id=peer_id)
