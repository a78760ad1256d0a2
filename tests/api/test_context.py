"""GetContext budget arithmetic, summaries, peer cards and representations."""

from __future__ import annotations

import grpc
from honcho_grpc_proto.v1 import message_pb2, peer_pb2, session_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.tokens import count_tokens
from tests.conftest import Stubs
from tests.helpers import fails

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def seed(stubs: Stubs, ws: str, n: int) -> list[message_pb2.Message]:
    r = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="alice" if i % 2 else "bob",
                                     content=f"message number {i} " + "word " * (i % 7))
            for i in range(n)]))
    return list(r.messages)


async def test_context_fills_budget_with_newest_messages(stubs: Stubs, ws: str) -> None:
    messages = await seed(stubs, ws, 40)
    budget = sum(m.token_count for m in messages[-10:])
    r = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=budget))
    assert [m.sequence for m in r.messages] == list(range(31, 41))
    assert not r.HasField("summary")
    # One token less drops exactly the oldest of them.
    r = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=budget - 1))
    assert [m.sequence for m in r.messages] == list(range(32, 41))


async def test_context_uses_summary_then_messages_after_it(stubs: Stubs, db: Database,
                                                           ws: str) -> None:
    messages = await seed(stubs, ws, 30)
    summary = "Alice and Bob counted messages."
    await db.pool.execute(
        "INSERT INTO summaries (workspace_id, session_id, summary_type, content, "
        "last_message_id, last_message_seq, token_count) VALUES ($1, 's', 'short', $2, $3, "
        "20, $4)", ws, summary, messages[19].id, count_tokens(summary))
    budget = 1000
    r = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=budget))
    assert r.summary.content == summary and r.summary.last_message_sequence == 20
    assert [m.sequence for m in r.messages] == list(range(21, 31))
    # A summary larger than 40% of the budget is left out; messages fill the budget instead.
    small = int(count_tokens(summary) / 0.4) - 1
    r = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=small))
    assert not r.HasField("summary")
    assert sum(m.token_count for m in r.messages) <= small
    # summary=false skips it.
    r = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=budget, summary=False))
    assert not r.HasField("summary") and r.messages[-1].sequence == 30
    summaries = await stubs.sessions.GetSummaries(session_pb2.GetSummariesRequest(
        workspace_id=ws, session_id="s"))
    assert summaries.short_summary.content == summary
    assert not summaries.HasField("long_summary")


async def test_context_with_target_representation_and_card(stubs: Stubs, db: Database,
                                                           ws: str) -> None:
    await seed(stubs, ws, 4)
    await stubs.peers.SetPeerCard(peer_pb2.SetPeerCardRequest(
        workspace_id=ws, peer_id="bob", target_id="alice",
        entries=["IDENTITY: Alice", "ATTRIBUTE: likes hiking"]))
    await db.pool.execute(
        "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
        "session_id, content, times_derived) VALUES ($1, 'c1', 'bob', 'alice', 's', "
        "'alice likes hiking', 3), ($1, 'c2', 'bob', 'alice', 's', 'alice is a nurse', 1)", ws)
    r = await stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=2000, peer_target="alice",
        peer_perspective="bob"))
    assert "alice likes hiking" in r.peer_representation
    assert "## Explicit conclusions" in r.peer_representation
    assert list(r.peer_card) == ["IDENTITY: Alice", "ATTRIBUTE: likes hiking"]
    used = count_tokens(r.peer_representation) + sum(count_tokens(e) for e in r.peer_card)
    assert sum(m.token_count for m in r.messages) <= 2000 - used
    rep = await stubs.peers.GetRepresentation(peer_pb2.GetRepresentationRequest(
        workspace_id=ws, peer_id="bob", target_id="alice", max_conclusions=1,
        include_most_frequent=True))
    assert list(rep.conclusion_ids) == ["c1"]
    ctx = await stubs.peers.GetPeerContext(peer_pb2.GetPeerContextRequest(
        workspace_id=ws, peer_id="bob", target_id="alice"))
    assert ctx.target_id == "alice" and "alice is a nurse" in ctx.representation
    own = await stubs.peers.GetPeerCard(peer_pb2.GetPeerCardRequest(workspace_id=ws,
                                                                   peer_id="alice"))
    assert not own.exists and list(own.entries) == []


async def test_context_bad_input(stubs: Stubs, ws: str) -> None:
    await seed(stubs, ws, 1)
    await fails(stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", tokens=10**7)), INVALID, field="tokens")
    await fails(stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="s", peer_perspective="bob")), INVALID,
        field="peer_perspective")
    await fails(stubs.sessions.GetContext(session_pb2.GetContextRequest(
        workspace_id=ws, session_id="nope")), grpc.StatusCode.NOT_FOUND)
    await fails(stubs.peers.SetPeerCard(peer_pb2.SetPeerCardRequest(
        workspace_id=ws, peer_id="bob", entries=["x"] * 41)), INVALID, field="entries")
    await fails(stubs.peers.GetPeerCard(peer_pb2.GetPeerCardRequest(
        workspace_id=ws, peer_id="ghost")), grpc.StatusCode.NOT_FOUND)
