"""Workspaces, peers and sessions through the real server: happy paths, not-found, bad input,
update masks, pagination and membership."""

from __future__ import annotations

import grpc
from google.protobuf import field_mask_pb2, struct_pb2
from honcho_grpc_proto.v1 import message_pb2, peer_pb2, resources_pb2, session_pb2, workspace_pb2

from tests.conftest import Stubs
from tests.helpers import fails

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def meta(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


async def test_workspace_get_or_create_says_whether_it_created(stubs: Stubs, ws: str) -> None:
    first = await stubs.workspaces.GetOrCreateWorkspace(
        workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws, metadata=meta(team="a")))
    again = await stubs.workspaces.GetOrCreateWorkspace(
        workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws, metadata=meta(team="b")))
    assert first.created and not again.created
    assert again.workspace.metadata["team"] == "a"
    got = await stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(workspace_id=ws))
    assert got.workspace.id == ws and got.workspace.create_time.seconds > 0


async def test_workspace_not_found_and_bad_id(stubs: Stubs, ws: str) -> None:
    f = await fails(stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id=ws)), NOT_FOUND, reason="WORKSPACE_NOT_FOUND")
    assert f.info.metadata["workspaceId"] == ws
    await fails(stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id="bad id!")), INVALID, field="workspace_id")
    await fails(stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest()), INVALID,
                field="workspace_id")
    await fails(stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id="x" * 513)), INVALID, field="workspace_id")


async def test_update_masks(stubs: Stubs, ws: str) -> None:
    await stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws, metadata=meta(a=1)))
    config = resources_pb2.Configuration(
        reasoning=resources_pb2.ReasoningConfiguration(enabled=False))
    # Absent mask: every populated field.
    r = await stubs.workspaces.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=ws, metadata=meta(b=2))))
    assert dict(r.workspace.metadata) == {"b": 2}
    # Explicit mask: only configuration changes, metadata in the request is ignored.
    r = await stubs.workspaces.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=ws, metadata=meta(c=3), configuration=config),
        update_mask=field_mask_pb2.FieldMask(paths=["configuration", "create_time"])))
    assert dict(r.workspace.metadata) == {"b": 2}
    assert r.workspace.configuration.reasoning.HasField("enabled")
    assert not r.workspace.configuration.reasoning.enabled
    # `*` replaces everything updatable.
    r = await stubs.workspaces.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=ws),
        update_mask=field_mask_pb2.FieldMask(paths=["*"])))
    assert dict(r.workspace.metadata) == {} and not r.workspace.configuration.HasField(
        "reasoning")
    await fails(stubs.workspaces.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=ws),
        update_mask=field_mask_pb2.FieldMask(paths=["nonsense"]))), INVALID,
        field="update_mask.paths")
    await fails(stubs.workspaces.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=ws + "-missing"))), NOT_FOUND)


async def test_metadata_limits(stubs: Stubs, ws: str) -> None:
    deep: dict[str, object] = {"v": 1}
    for _ in range(6):
        deep = {"k": deep}
    await fails(stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws, metadata=meta(**deep))), INVALID, field="metadata")
    await fails(stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws, metadata=meta(**{f"k{i}": i for i in range(101)}))), INVALID,
        field="metadata")
    await fails(stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws, metadata=meta(k="a\x00b"))), INVALID, field="metadata")


async def test_peer_crud_and_pagination_walk(stubs: Stubs, ws: str) -> None:
    ids = [f"p{i:02d}" for i in range(23)]
    for pid in ids:
        r = await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(
            workspace_id=ws, peer_id=pid, metadata=meta(n=int(pid[1:]))))
        assert r.created
    seen, token, pages = [], "", 0
    while True:
        page = await stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
            workspace_id=ws, page_size=5, page_token=token))
        seen += [p.id for p in page.peers]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == ids and pages == 5
    # Reverse order and a filter, with a page size above the maximum coerced down.
    page = await stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
        workspace_id=ws, page_size=1000, reverse=True,
        filters=meta(metadata={"n": {"gte": 20}})))
    assert [p.id for p in page.peers] == ["p22", "p21", "p20"] and not page.next_page_token
    # A token replayed with other parameters is refused; garbage is refused.
    first = await stubs.peers.ListPeers(peer_pb2.ListPeersRequest(workspace_id=ws, page_size=2))
    await fails(stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
        workspace_id=ws, page_size=2, page_token=first.next_page_token, reverse=True)),
        INVALID, reason="PAGE_TOKEN_MISMATCH", field="page_token")
    await fails(stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
        workspace_id=ws, page_token="%%%not-a-token")), INVALID, reason="PAGE_TOKEN_INVALID")
    await fails(stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
        workspace_id=ws, page_size=-1)), INVALID, field="page_size")


async def test_peer_update_get_delete(stubs: Stubs, ws: str) -> None:
    await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(workspace_id=ws,
                                                                      peer_id="alice"))
    r = await stubs.peers.UpdatePeer(peer_pb2.UpdatePeerRequest(peer=resources_pb2.Peer(
        workspace_id=ws, id="alice",
        configuration=resources_pb2.PeerConfiguration(observe_me=False))))
    assert r.peer.configuration.HasField("observe_me") and not r.peer.configuration.observe_me
    got = await stubs.peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=ws, peer_id="alice"))
    assert got.peer.configuration.observe_me is False
    await stubs.peers.DeletePeer(peer_pb2.DeletePeerRequest(workspace_id=ws, peer_id="alice"))
    await fails(stubs.peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=ws, peer_id="alice")),
                NOT_FOUND, reason="PEER_NOT_FOUND")
    await fails(stubs.peers.DeletePeer(peer_pb2.DeletePeerRequest(workspace_id=ws,
                                                                  peer_id="alice")), NOT_FOUND)


async def test_writing_makes_authors_members_again_with_their_settings(stubs: Stubs,
                                                                       ws: str) -> None:
    """A message's author becomes a member (a new peer is created), one who had left
    rejoins, and membership settings survive; an author twice in one batch counts once."""
    obs = resources_pb2.SessionPeerConfiguration
    await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s1", peers={"alice": obs(observe_me=False),
                                                 "bob": obs(observe_others=True)}))
    await stubs.sessions.RemovePeers(session_pb2.RemovePeersRequest(
        workspace_id=ws, session_id="s1", peer_ids=["alice"]))
    written = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s1", messages=[
            message_pb2.MessageInput(peer_id=p, content=f"hello {i}")
            for i, p in enumerate(["alice", "dave", "alice"])]))
    assert [m.sequence for m in written.messages] == [1, 2, 3]
    members = await stubs.sessions.ListSessionPeers(session_pb2.ListSessionPeersRequest(
        workspace_id=ws, session_id="s1"))
    assert [m.peer_id for m in members.peers] == ["alice", "bob", "dave"]
    cfg = await stubs.sessions.GetSessionPeerConfig(session_pb2.GetSessionPeerConfigRequest(
        workspace_id=ws, session_id="s1", peer_id="alice"))
    assert cfg.configuration.HasField("observe_me") and not cfg.configuration.observe_me
    await stubs.peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=ws, peer_id="dave"))


async def test_session_membership(stubs: Stubs, ws: str) -> None:
    obs = resources_pb2.SessionPeerConfiguration
    r = await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s1", peers={"alice": obs(), "bob": obs(
            observe_others=True)}))
    assert r.created and r.session.active
    members = await stubs.sessions.ListSessionPeers(session_pb2.ListSessionPeersRequest(
        workspace_id=ws, session_id="s1"))
    assert [m.peer_id for m in members.peers] == ["alice", "bob"]
    assert members.peers[1].configuration.observe_others
    removed = await stubs.sessions.RemovePeers(session_pb2.RemovePeersRequest(
        workspace_id=ws, session_id="s1", peer_ids=["alice"]))
    assert [m.peer_id for m in removed.peers] == ["bob"]
    everyone = await stubs.sessions.ListSessionPeers(session_pb2.ListSessionPeersRequest(
        workspace_id=ws, session_id="s1", include_inactive=True))
    left = {m.peer_id: m.HasField("leave_time") for m in everyone.peers}
    assert left == {"alice": True, "bob": False}
    added = await stubs.sessions.AddPeers(session_pb2.AddPeersRequest(
        workspace_id=ws, session_id="s1", peers={"alice": obs(observe_me=False)}))
    assert [m.peer_id for m in added.peers] == ["alice", "bob"]
    cfg = await stubs.sessions.GetSessionPeerConfig(session_pb2.GetSessionPeerConfigRequest(
        workspace_id=ws, session_id="s1", peer_id="alice"))
    assert cfg.configuration.HasField("observe_me") and not cfg.configuration.observe_me
    cfg2 = await stubs.sessions.SetSessionPeerConfig(session_pb2.SetSessionPeerConfigRequest(
        workspace_id=ws, session_id="s1", peer_id="alice",
        configuration=obs(observe_others=True)))
    assert cfg2.configuration.observe_others and not cfg2.configuration.observe_me
    now = await stubs.sessions.SetPeers(session_pb2.SetPeersRequest(
        workspace_id=ws, session_id="s1", peers={"carol": obs()}))
    assert [m.peer_id for m in now.peers] == ["carol"]
    sessions = await stubs.peers.ListPeerSessions(peer_pb2.ListPeerSessionsRequest(
        workspace_id=ws, peer_id="carol"))
    assert [s.id for s in sessions.sessions] == ["s1"]
    await fails(stubs.sessions.GetSessionPeerConfig(session_pb2.GetSessionPeerConfigRequest(
        workspace_id=ws, session_id="s1", peer_id="nobody")), NOT_FOUND)
    await fails(stubs.sessions.AddPeers(session_pb2.AddPeersRequest(
        workspace_id=ws, session_id="missing", peers={"a": obs()})), NOT_FOUND,
        reason="SESSION_NOT_FOUND")


async def test_observer_limit(stubs: Stubs, ws: str) -> None:
    obs = resources_pb2.SessionPeerConfiguration
    peers = {f"p{i}": obs(observe_others=True) for i in range(11)}
    await fails(stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s", peers=peers)), grpc.StatusCode.FAILED_PRECONDITION,
        reason="OBSERVER_LIMIT_EXCEEDED")
    # Nothing of the refused call was written.
    await fails(stubs.sessions.GetSession(session_pb2.GetSessionRequest(
        workspace_id=ws, session_id="s")), NOT_FOUND)


async def test_session_list_update_delete(stubs: Stubs, ws: str) -> None:
    for i in range(3):
        await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
            workspace_id=ws, session_id=f"s{i}", metadata=meta(i=i)))
    page = await stubs.sessions.ListSessions(session_pb2.ListSessionsRequest(
        workspace_id=ws, filters=meta(OR=[{"id": "s0"}, {"metadata": {"i": 2}}])))
    assert [s.id for s in page.sessions] == ["s0", "s2"]
    r = await stubs.sessions.UpdateSession(session_pb2.UpdateSessionRequest(
        session=resources_pb2.Session(workspace_id=ws, id="s1", metadata=meta(x="y")),
        update_mask=field_mask_pb2.FieldMask(paths=["metadata"])))
    assert dict(r.session.metadata) == {"x": "y"}
    await stubs.sessions.DeleteSession(session_pb2.DeleteSessionRequest(workspace_id=ws,
                                                                        session_id="s1"))
    await fails(stubs.sessions.GetSession(session_pb2.GetSessionRequest(
        workspace_id=ws, session_id="s1")), NOT_FOUND, reason="SESSION_NOT_FOUND")
    await fails(stubs.sessions.ListSessions(session_pb2.ListSessionsRequest(
        workspace_id=ws, filters=meta(bogus=1))), INVALID)
