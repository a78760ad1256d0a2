"""ScopeService and the scope fields of the other RPCs, through the gRPC face: membership,
pages, status, refusals with the field named, and the boundary on chat (streamed and not),
representation, context and search."""

from __future__ import annotations

import grpc
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    dialectic_pb2,
    message_pb2,
    peer_pb2,
    scope_pb2,
    scope_pb2_grpc,
    search_pb2,
    session_pb2,
)

from tests.conftest import Stubs
from tests.helpers import fails


def _scopes(stubs: Stubs) -> scope_pb2_grpc.ScopeServiceStub:
    return scope_pb2_grpc.ScopeServiceStub(stubs.channel)


async def _session(stubs: Stubs, ws: str, session_id: str, *scope_ids: str) -> None:
    await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id=session_id, scope_ids=scope_ids))


async def test_membership(stubs: Stubs, ws: str) -> None:
    scopes = _scopes(stubs)
    await _session(stubs, ws, "s1", "team")
    await _session(stubs, ws, "s2")
    got = await scopes.GetOrCreateScope(scope_pb2.GetOrCreateScopeRequest(
        workspace_id=ws, scope_id="team"))
    assert not got.created and got.scope.id == "team"
    made = await scopes.GetOrCreateScope(scope_pb2.GetOrCreateScopeRequest(
        workspace_id=ws, scope_id="other"))
    assert made.created
    first = await scopes.ListScopes(scope_pb2.ListScopesRequest(workspace_id=ws, page_size=1))
    rest = await scopes.ListScopes(scope_pb2.ListScopesRequest(
        workspace_id=ws, page_size=1, page_token=first.next_page_token))
    assert [s.id for s in (*first.scopes, *rest.scopes)] == ["team", "other"]

    added = await scopes.AddScopeSessions(scope_pb2.AddScopeSessionsRequest(
        workspace_id=ws, scope_id="team", session_ids=["s2", "s1"]))
    assert added.added == 1  # s1 joined at its creation
    listed = await scopes.ListScopeSessions(scope_pb2.ListScopeSessionsRequest(
        workspace_id=ws, scope_id="team"))
    assert [s.id for s in listed.sessions] == ["s1", "s2"]
    status = await scopes.GetScopeStatus(scope_pb2.GetScopeStatusRequest(
        workspace_id=ws, scope_id="team"))
    assert [m.session_id for m in status.sessions] == ["s1", "s2"]
    removed = await scopes.RemoveScopeSession(scope_pb2.RemoveScopeSessionRequest(
        workspace_id=ws, scope_id="team", session_id="s2"))
    again = await scopes.RemoveScopeSession(scope_pb2.RemoveScopeSessionRequest(
        workspace_id=ws, scope_id="team", session_id="s2"))
    assert (removed.removed, again.removed) == (True, False)

    await fails(scopes.GetScope(scope_pb2.GetScopeRequest(workspace_id=ws, scope_id="none")),
                grpc.StatusCode.NOT_FOUND, reason="SCOPE_NOT_FOUND")
    await fails(scopes.AddScopeSessions(scope_pb2.AddScopeSessionsRequest(
        workspace_id=ws, scope_id="team", session_ids=["missing"])),
        grpc.StatusCode.NOT_FOUND, reason="SESSION_NOT_FOUND")
    await fails(scopes.AddScopeSessions(scope_pb2.AddScopeSessionsRequest(
        workspace_id=ws, scope_id="team", session_ids=[])),
        grpc.StatusCode.INVALID_ARGUMENT, field="session_ids")
    await fails(scopes.GetOrCreateScope(scope_pb2.GetOrCreateScopeRequest(
        workspace_id=ws, scope_id="a" * 507)),
        grpc.StatusCode.INVALID_ARGUMENT, field="scope_id")
    await fails(stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s3", scope_ids=["bad id"])),
        grpc.StatusCode.INVALID_ARGUMENT, field="scope_ids[0]")


async def test_boundary(stubs: Stubs, ws: str) -> None:
    await _session(stubs, ws, "inside", "team")
    await _session(stubs, ws, "outside")
    await _scopes(stubs).GetOrCreateScope(scope_pb2.GetOrCreateScopeRequest(
        workspace_id=ws, scope_id="empty"))
    for session_id, text in (("inside", "I love kayaking on the lake every weekend"),
                             ("outside", "I love skydiving from small planes")):
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=session_id,
            messages=[message_pb2.MessageInput(peer_id="alice", content=text)]))
    await stubs.conclusions.CreateConclusions(conclusion_pb2.CreateConclusionsRequest(
        workspace_id=ws, conclusions=[
            conclusion_pb2.ConclusionInput(observer_id="alice", observed_id="alice",
                                           content="alice loves kayaking", session_id="inside"),
            conclusion_pb2.ConclusionInput(observer_id="alice", observed_id="alice",
                                           content="alice loves skydiving",
                                           session_id="outside")]))

    rep = await stubs.peers.GetRepresentation(peer_pb2.GetRepresentationRequest(
        workspace_id=ws, peer_id="alice", scope_ids=["team"]))
    assert "kayaking" in rep.representation and "skydiving" not in rep.representation
    listed = await stubs.peers.GetRepresentation(peer_pb2.GetRepresentationRequest(
        workspace_id=ws, peer_id="alice", session_ids=["outside"]))
    assert "skydiving" in listed.representation and "kayaking" not in listed.representation

    ctx = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="inside", peer_target="alice", scope_id="team"))
    assert "kayaking" in ctx.peer_representation
    assert "skydiving" not in ctx.peer_representation

    hits = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="love", scope_id="team"))
    assert {h.message.session_id for h in hits.hits} == {"inside"}
    nothing = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="love", scope_id="empty"))
    assert list(nothing.hits) == []

    def ask(**kw: object) -> dialectic_pb2.ChatQuery:
        return dialectic_pb2.ChatQuery(workspace_id=ws, peer_id="alice",
                                       query="What does alice love doing?", **kw)  # type: ignore[arg-type]

    wide = await stubs.dialectic.Chat(dialectic_pb2.ChatRequest(query=ask()))
    assert "skydiving" in wide.content.lower()
    scoped = await stubs.dialectic.Chat(dialectic_pb2.ChatRequest(query=ask(scope_ids=["team"])))
    assert "kayak" in scoped.content.lower() and "skydiving" not in scoped.content.lower()
    pieces = [r.delta.content async for r in stubs.dialectic.StreamChat(
        dialectic_pb2.StreamChatRequest(query=ask(scope_ids=["team"]))) if r.HasField("delta")]
    text = "".join(pieces).lower()
    assert "kayak" in text and "skydiving" not in text

    await fails(stubs.dialectic.Chat(dialectic_pb2.ChatRequest(
        query=ask(scope_ids=["team"], session_id="inside"))),
        grpc.StatusCode.INVALID_ARGUMENT, field="query.session_id")
    await fails(stubs.dialectic.Chat(dialectic_pb2.ChatRequest(query=ask(scope_ids=["ghost"]))),
                grpc.StatusCode.NOT_FOUND, reason="SCOPE_NOT_FOUND")
    await fails(stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="inside", scope_id="team")),
        grpc.StatusCode.INVALID_ARGUMENT, field="peer_target")
    await fails(stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="love", scope_id="team", session_id="inside")),
        grpc.StatusCode.INVALID_ARGUMENT, field="scope_id")
