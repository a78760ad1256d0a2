"""Every RPC x every kind of token, against a server with auth on.

The expected outcomes are written out here, independently of the policy table in
honcho_grpc/server/auth.py. Each request names workspace W1, acts as peer P1 (an active
member of session S1) and names session S1. "Allowed" means neither UNAUTHENTICATED nor
PERMISSION_DENIED (the call may still fail for other reasons, e.g. NOT_FOUND). Every refused
call must leave the rows of both workspaces exactly as they were: no cross-tenant (or
cross-scope) read or write anywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    dialectic_pb2,
    event_pb2,
    key_pb2,
    message_pb2,
    peer_pb2,
    resources_pb2,
    scope_pb2,
    search_pb2,
    session_pb2,
    webhook_pb2,
    workspace_pb2,
)

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.helpers import Failure
from tests.security.conftest import OTHER_SECRET, RPCS, bearer, fingerprint, invoke, token

KINDS = ("admin", "own_workspace", "other_workspace", "own_peer", "other_peer", "own_session",
         "other_session", "expired", "wrong_signature", "none")
DENIED = {"other_workspace": grpc.StatusCode.PERMISSION_DENIED,
          "other_peer": grpc.StatusCode.PERMISSION_DENIED,
          "other_session": grpc.StatusCode.PERMISSION_DENIED,
          "expired": grpc.StatusCode.UNAUTHENTICATED,
          "wrong_signature": grpc.StatusCode.UNAUTHENTICATED,
          "none": grpc.StatusCode.UNAUTHENTICATED}
LETTERS = {"A": "admin", "W": "own_workspace", "P": "own_peer", "S": "own_session"}


@dataclass
class World:
    w1: str
    w2: str
    p1: str = "p1"
    p2: str = "p2"
    s1: str = "s1"
    s2: str = "s2"
    m1: str = ""


def _struct(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def _msg(peer: str, text: str = "hello there") -> message_pb2.MessageInput:
    return message_pb2.MessageInput(peer_id=peer, content=text)


# method -> (who is allowed: letters of LETTERS, request built from the world)
Sample = Callable[[World], Any]
CASES: dict[str, tuple[str, Sample]] = {
    "WorkspaceService/GetOrCreateWorkspace": (
        "AW", lambda w: workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=w.w1)),
    "WorkspaceService/GetWorkspace": (
        "AW", lambda w: workspace_pb2.GetWorkspaceRequest(workspace_id=w.w1)),
    "WorkspaceService/ListWorkspaces": ("A", lambda w: workspace_pb2.ListWorkspacesRequest()),
    "WorkspaceService/UpdateWorkspace": ("AW", lambda w: workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=w.w1, metadata=_struct(k=1)))),
    "WorkspaceService/DeleteWorkspace": (
        "AW", lambda w: workspace_pb2.DeleteWorkspaceRequest(workspace_id=w.w1)),
    "WorkspaceService/GetQueueStatus": ("AWPS", lambda w: workspace_pb2.GetQueueStatusRequest(
        workspace_id=w.w1, session_id=w.s1, observer_id=w.p1)),
    "WorkspaceService/ScheduleDream": ("AWP", lambda w: workspace_pb2.ScheduleDreamRequest(
        workspace_id=w.w1, observer_id=w.p1, observed_id=w.p1, session_id=w.s1)),
    "PeerService/GetOrCreatePeer": (
        "AWP", lambda w: peer_pb2.GetOrCreatePeerRequest(workspace_id=w.w1, peer_id=w.p1)),
    "PeerService/GetPeer": (
        "AWP", lambda w: peer_pb2.GetPeerRequest(workspace_id=w.w1, peer_id=w.p1)),
    "PeerService/ListPeers": ("AW", lambda w: peer_pb2.ListPeersRequest(workspace_id=w.w1)),
    "PeerService/UpdatePeer": ("AWP", lambda w: peer_pb2.UpdatePeerRequest(
        peer=resources_pb2.Peer(workspace_id=w.w1, id=w.p1, metadata=_struct(k=1)))),
    "PeerService/DeletePeer": (
        "AWP", lambda w: peer_pb2.DeletePeerRequest(workspace_id=w.w1, peer_id=w.p1)),
    "PeerService/ListPeerSessions": (
        "AWP", lambda w: peer_pb2.ListPeerSessionsRequest(workspace_id=w.w1, peer_id=w.p1)),
    "PeerService/GetPeerCard": ("AWP", lambda w: peer_pb2.GetPeerCardRequest(
        workspace_id=w.w1, peer_id=w.p1, target_id=w.p2)),
    "PeerService/SetPeerCard": ("AWP", lambda w: peer_pb2.SetPeerCardRequest(
        workspace_id=w.w1, peer_id=w.p1, entries=["IDENTITY: tester"])),
    "PeerService/GetRepresentation": ("AWP", lambda w: peer_pb2.GetRepresentationRequest(
        workspace_id=w.w1, peer_id=w.p1, target_id=w.p2, session_id=w.s1)),
    "PeerService/GetPeerContext": ("AWP", lambda w: peer_pb2.GetPeerContextRequest(
        workspace_id=w.w1, peer_id=w.p1)),
    "SessionService/GetOrCreateSession": ("AWPS", lambda w: session_pb2.GetOrCreateSessionRequest(
        workspace_id=w.w1, session_id=w.s1)),
    "SessionService/GetSession": (
        "AWPS", lambda w: session_pb2.GetSessionRequest(workspace_id=w.w1, session_id=w.s1)),
    "SessionService/ListSessions": (
        "AW", lambda w: session_pb2.ListSessionsRequest(workspace_id=w.w1)),
    "SessionService/UpdateSession": ("AWS", lambda w: session_pb2.UpdateSessionRequest(
        session=resources_pb2.Session(workspace_id=w.w1, id=w.s1, metadata=_struct(k=1)))),
    "SessionService/DeleteSession": (
        "AWS", lambda w: session_pb2.DeleteSessionRequest(workspace_id=w.w1, session_id=w.s1)),
    "SessionService/CloneSession": (
        "AW", lambda w: session_pb2.CloneSessionRequest(workspace_id=w.w1, session_id=w.s1)),
    "SessionService/AddPeers": ("AWS", lambda w: session_pb2.AddPeersRequest(
        workspace_id=w.w1, session_id=w.s1,
        peers={w.p1: resources_pb2.SessionPeerConfiguration()})),
    "SessionService/SetPeers": ("AWS", lambda w: session_pb2.SetPeersRequest(
        workspace_id=w.w1, session_id=w.s1,
        peers={w.p1: resources_pb2.SessionPeerConfiguration()})),
    "SessionService/RemovePeers": ("AWPS", lambda w: session_pb2.RemovePeersRequest(
        workspace_id=w.w1, session_id=w.s1, peer_ids=[w.p1])),
    "SessionService/ListSessionPeers": ("AWPS", lambda w: session_pb2.ListSessionPeersRequest(
        workspace_id=w.w1, session_id=w.s1)),
    "SessionService/GetSessionPeerConfig": (
        "AWPS", lambda w: session_pb2.GetSessionPeerConfigRequest(
            workspace_id=w.w1, session_id=w.s1, peer_id=w.p1)),
    "SessionService/SetSessionPeerConfig": (
        "AWPS", lambda w: session_pb2.SetSessionPeerConfigRequest(
            workspace_id=w.w1, session_id=w.s1, peer_id=w.p1,
            configuration=resources_pb2.SessionPeerConfiguration(observe_me=True))),
    "SessionService/GetContext": ("AWPS", lambda w: session_pb2.GetContextRequest(
        workspace_id=w.w1, session_id=w.s1)),
    "SessionService/GetSummaries": ("AWPS", lambda w: session_pb2.GetSummariesRequest(
        workspace_id=w.w1, session_id=w.s1)),
    "MessageService/CreateMessages": ("AWPS", lambda w: message_pb2.CreateMessagesRequest(
        workspace_id=w.w1, session_id=w.s1, messages=[_msg(w.p1)])),
    "MessageService/ImportMessages": ("AWPS", lambda w: [message_pb2.ImportMessagesRequest(
        workspace_id=w.w1, session_id=w.s1, messages=[_msg(w.p1)])]),
    "MessageService/UploadFile": ("AWPS", lambda w: [
        message_pb2.UploadFileRequest(header=message_pb2.UploadFileHeader(
            workspace_id=w.w1, session_id=w.s1, peer_id=w.p1, filename="a.txt",
            content_type="text/plain")),
        message_pb2.UploadFileRequest(chunk=b"some text in a file")]),
    "MessageService/GetMessage": ("AWPS", lambda w: message_pb2.GetMessageRequest(
        workspace_id=w.w1, session_id=w.s1, message_id=w.m1)),
    "MessageService/ListMessages": ("AWPS", lambda w: message_pb2.ListMessagesRequest(
        workspace_id=w.w1, session_id=w.s1)),
    "MessageService/UpdateMessage": ("AWS", lambda w: message_pb2.UpdateMessageRequest(
        message=resources_pb2.Message(workspace_id=w.w1, session_id=w.s1, id=w.m1,
                                      metadata=_struct(k=1)))),
    "MessageService/DeleteMessage": ("AWS", lambda w: message_pb2.DeleteMessageRequest(
        workspace_id=w.w1, session_id=w.s1, message_id=w.m1)),
    "SearchService/SearchMessages": ("AWPS", lambda w: search_pb2.SearchMessagesRequest(
        workspace_id=w.w1, query="hello", session_id=w.s1)),
    "ConclusionService/CreateConclusions": (
        "AWP", lambda w: conclusion_pb2.CreateConclusionsRequest(
            workspace_id=w.w1, conclusions=[conclusion_pb2.ConclusionInput(
                observer_id=w.p1, observed_id=w.p2, content="p2 likes tea")])),
    "ConclusionService/ListConclusions": (
        "AW", lambda w: conclusion_pb2.ListConclusionsRequest(workspace_id=w.w1)),
    "ConclusionService/QueryConclusions": (
        "AWP", lambda w: conclusion_pb2.QueryConclusionsRequest(
            workspace_id=w.w1, observer_id=w.p1, observed_id=w.p2, query="tea")),
    "ConclusionService/DeleteConclusion": (
        "AW", lambda w: conclusion_pb2.DeleteConclusionRequest(
            workspace_id=w.w1, conclusion_id="no-such-conclusion")),
    "DialecticService/Chat": ("AWP", lambda w: dialectic_pb2.ChatRequest(
        query=dialectic_pb2.ChatQuery(workspace_id=w.w1, peer_id=w.p1, query="what is new?",
                                      session_id=w.s1))),
    "DialecticService/StreamChat": ("AWP", lambda w: dialectic_pb2.StreamChatRequest(
        query=dialectic_pb2.ChatQuery(workspace_id=w.w1, peer_id=w.p1, query="what is new?",
                                      session_id=w.s1))),
    "WebhookService/CreateWebhookEndpoint": (
        "AW", lambda w: webhook_pb2.CreateWebhookEndpointRequest(
            workspace_id=w.w1, url="https://93.184.216.34/hook")),
    "WebhookService/ListWebhookEndpoints": (
        "AW", lambda w: webhook_pb2.ListWebhookEndpointsRequest(workspace_id=w.w1)),
    "WebhookService/DeleteWebhookEndpoint": (
        "AW", lambda w: webhook_pb2.DeleteWebhookEndpointRequest(
            workspace_id=w.w1, endpoint_id="no-such-endpoint")),
    "WebhookService/TestWebhook": (
        "AW", lambda w: webhook_pb2.TestWebhookRequest(workspace_id=w.w1)),
    "EventService/WatchEvents": ("AWPS", lambda w: event_pb2.WatchEventsRequest(
        workspace_id=w.w1, session_id=w.s1)),
    "KeyService/CreateKey": ("A", lambda w: key_pb2.CreateKeyRequest(workspace_id=w.w1)),
    # ScopeService: scopes span sessions, so workspace and admin tokens only.
    "ScopeService/GetOrCreateScope": ("AW", lambda w: scope_pb2.GetOrCreateScopeRequest(
        workspace_id=w.w1, scope_id="team")),
    "ScopeService/GetScope": ("AW", lambda w: scope_pb2.GetScopeRequest(
        workspace_id=w.w1, scope_id="team")),
    "ScopeService/ListScopes": ("AW", lambda w: scope_pb2.ListScopesRequest(
        workspace_id=w.w1)),
    "ScopeService/AddScopeSessions": ("AW", lambda w: scope_pb2.AddScopeSessionsRequest(
        workspace_id=w.w1, scope_id="team", session_ids=[w.s1])),
    "ScopeService/RemoveScopeSession": ("AW", lambda w: scope_pb2.RemoveScopeSessionRequest(
        workspace_id=w.w1, scope_id="team", session_id=w.s1)),
    "ScopeService/ListScopeSessions": ("AW", lambda w: scope_pb2.ListScopeSessionsRequest(
        workspace_id=w.w1, scope_id="team")),
    "ScopeService/GetScopeStatus": ("AW", lambda w: scope_pb2.GetScopeStatusRequest(
        workspace_id=w.w1, scope_id="team")),
}

# The scope options of other RPCs: a peer or session token may not use them, even where it
# may make the call without them.
SCOPED: dict[str, tuple[str, Callable[[World], Any]]] = {
    "DialecticService/Chat": ("AW", lambda w: dialectic_pb2.ChatRequest(
        query=dialectic_pb2.ChatQuery(workspace_id=w.w1, peer_id=w.p1, query="what is new?",
                                      scope_ids=["team"]))),
    "PeerService/GetRepresentation": ("AW", lambda w: peer_pb2.GetRepresentationRequest(
        workspace_id=w.w1, peer_id=w.p1, scope_ids=["team"])),
    "SessionService/GetContext": ("AW", lambda w: session_pb2.GetContextRequest(
        workspace_id=w.w1, session_id=w.s1, peer_target=w.p1, scope_id="team")),
    "SearchService/SearchMessages": ("AW", lambda w: search_pb2.SearchMessagesRequest(
        workspace_id=w.w1, query="hello", scope_id="team")),
    "SessionService/GetOrCreateSession": ("AW", lambda w: session_pb2.GetOrCreateSessionRequest(
        workspace_id=w.w1, session_id=w.s1, scope_ids=["team"])),
}


def _full(name: str) -> str:
    return f"/honcho.v1.{name}"


def test_every_rpc_has_a_case() -> None:
    assert sorted(_full(name) for name in CASES) == sorted(RPCS)


def tokens(world: World) -> dict[str, str | None]:
    return {
        "admin": token(admin=True),
        "own_workspace": token(workspace=world.w1),
        "other_workspace": token(workspace=world.w2),
        "own_peer": token(workspace=world.w1, peer=world.p1),
        "other_peer": token(workspace=world.w1, peer=world.p2),
        "own_session": token(workspace=world.w1, session=world.s1),
        "other_session": token(workspace=world.w1, session=world.s2),
        "expired": token(admin=True, expires_in=-3600),
        "wrong_signature": token(OTHER_SECRET, admin=True),
        "none": None,
    }


async def set_up(stubs: Stubs, world: World) -> None:
    """(Re)create the world through the auth-free server: W1 with P1, P2, S1 = {P1},
    S2 = {P2} and one message M1 in S1; W2 with the same ids."""
    for ws in (world.w1, world.w2):
        await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
            workspace_id=ws, session_id=world.s1))
        await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
            workspace_id=ws, session_id=world.s2))
        for sid, peer in ((world.s1, world.p1), (world.s2, world.p2)):
            await stubs.sessions.SetPeers(session_pb2.SetPeersRequest(
                workspace_id=ws, session_id=sid,
                peers={peer: resources_pb2.SessionPeerConfiguration()}))
    page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=world.w1, session_id=world.s1, page_size=1))
    if page.messages:
        world.m1 = page.messages[0].id
    else:
        created = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=world.w1, session_id=world.s1, messages=[_msg(world.p1, "first")]))
        world.m1 = created.messages[0].id


def expected(allowed: str, kind: str) -> grpc.StatusCode | None:
    """None: allowed; else the exact refusal code."""
    if kind in DENIED:
        return DENIED[kind]
    return None if kind in {LETTERS[c] for c in allowed} else grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("name", sorted(CASES) + [f"{n} (scoped)" for n in sorted(SCOPED)])
async def test_auth_matrix(name: str, auth_channel: grpc.aio.Channel, stubs: Stubs,
                           db: Database) -> None:
    scoped = name.endswith(" (scoped)")
    name = name.removesuffix(" (scoped)")
    allowed, sample = (SCOPED if scoped else CASES)[name]
    method = _full(name)
    world = World(w1=f"am-{uuid.uuid4().hex[:10]}", w2=f"am-{uuid.uuid4().hex[:10]}")
    await set_up(stubs, world)
    by_kind = tokens(world)
    outcomes = {}
    for kind in KINDS:
        want = expected(allowed, kind)
        before = await fingerprint(db, (world.w1, world.w2)) if want is not None else None
        code, result = await invoke(auth_channel, method, sample(world),
                                    bearer(by_kind[kind]),
                                    watch=name == "EventService/WatchEvents")
        outcomes[kind] = code
        if want is None:
            assert code not in (grpc.StatusCode.UNAUTHENTICATED,
                                grpc.StatusCode.PERMISSION_DENIED), (name, kind, code)
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (name, kind)
            await set_up(stubs, world)  # an allowed call may have deleted or changed things
        else:
            assert code == want, (name, kind, code)
            Failure(result)  # a rich status: exactly one ErrorInfo in domain honcho.dev
            assert await fingerprint(db, (world.w1, world.w2)) == before, (name, kind)
    assert set(outcomes) == set(KINDS)
