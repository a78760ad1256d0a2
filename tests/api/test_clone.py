"""CloneSession copies metadata, configuration, members and messages (optionally up to one),
but no derived memory, and leaves the source untouched."""

from __future__ import annotations

import uuid

import grpc
from google.protobuf import struct_pb2
from honcho_grpc_proto.v1 import message_pb2, resources_pb2, session_pb2

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.helpers import fails


async def test_clone_session(stubs: Stubs, db: Database, ws: str) -> None:
    meta = struct_pb2.Struct()
    meta.update({"topic": "trip"})
    await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="src", metadata=meta,
        peers={"carol": resources_pb2.SessionPeerConfiguration(observe_others=True)}))
    created = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="src", messages=[
            message_pb2.MessageInput(peer_id="alice", content=f"m{i}") for i in range(5)]))
    full = await stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
        workspace_id=ws, session_id="src", new_session_id="copy"))
    assert full.session.id == "copy" and full.session.metadata["topic"] == "trip"
    page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="copy"))
    assert [m.content for m in page.messages] == [f"m{i}" for i in range(5)]
    assert [m.sequence for m in page.messages] == [1, 2, 3, 4, 5]
    members = await stubs.sessions.ListSessionPeers(session_pb2.ListSessionPeersRequest(
        workspace_id=ws, session_id="copy"))
    assert {m.peer_id: m.configuration.observe_others for m in members.peers} == {
        "alice": False, "carol": True}
    # Up to a message, inclusive, with a generated id; new messages continue the sequence.
    rid = str(uuid.uuid4())
    part = await stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
        workspace_id=ws, session_id="src", message_id=created.messages[1].id, request_id=rid))
    again = await stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
        workspace_id=ws, session_id="src", message_id=created.messages[1].id, request_id=rid))
    assert part == again and part.session.id
    more = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id=part.session.id,
        messages=[message_pb2.MessageInput(peer_id="bob", content="next")]))
    assert more.messages[0].sequence == 3
    # Copies cause no reasoning jobs: only the source's messages and the new one did.
    jobs = await db.pool.fetchval("SELECT count(*) FROM queue WHERE workspace_id = $1 AND "
                                  "session_id = $2 AND task_type = 'representation'", ws,
                                  part.session.id)
    assert jobs == 1
    await fails(stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
        workspace_id=ws, session_id="src", new_session_id="copy")),
        grpc.StatusCode.ALREADY_EXISTS, reason="SESSION_ALREADY_EXISTS")
    await fails(stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
        workspace_id=ws, session_id="src", message_id="missing")), grpc.StatusCode.NOT_FOUND)
    await fails(stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
        workspace_id=ws, session_id="nope")), grpc.StatusCode.NOT_FOUND)
