"""Hybrid search: full text finds messages before they are embedded, vectors after; scopes
and filters narrow the results."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2
from honcho_grpc_proto.v1 import message_pb2, search_pb2

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs, drain_backlog
from tests.helpers import fails

LINES = [
    ("alice", "I adopted a golden retriever puppy named Biscuit"),
    ("bob", "My favourite food is spicy ramen"),
    ("alice", "I work as a nurse at the city hospital"),
    ("bob", "I am training for a marathon in October"),
]


async def seed(stubs: Stubs, ws: str) -> None:
    for i, (peer, text) in enumerate(LINES):
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=f"s{i % 2}",
            messages=[message_pb2.MessageInput(peer_id=peer, content=text)]))


async def wait_embedded(db: Database, ws: str) -> None:
    await drain_backlog(db)
    assert not await db.pool.fetchval(
        "SELECT count(*) FROM embedding_backlog WHERE workspace_id = $1", ws)


async def search(stubs: Stubs, ws: str, query: str, **kw: object) -> list[str]:
    r = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query=query, **kw))  # type: ignore[arg-type]
    return [h.message.content for h in r.hits]


async def test_full_text_before_embedding(stubs: Stubs, db: Database, ws: str) -> None:
    """A message without a vector is still found, by the full-text arm."""
    await seed(stubs, ws)
    await wait_embedded(db, ws)
    await db.pool.execute("DELETE FROM message_embeddings WHERE workspace_id = $1", ws)
    found = await search(stubs, ws, "who is training for a marathon?")
    assert found and found[0] == LINES[3][1]


async def test_vector_and_scopes(stubs: Stubs, db: Database, ws: str) -> None:
    await seed(stubs, ws)
    await wait_embedded(db, ws)
    assert (await search(stubs, ws, "golden retriever Biscuit", limit=1)) == [LINES[0][1]]
    by_peer = await search(stubs, ws, "I", peer_id="bob", limit=10)
    assert set(by_peer) <= {LINES[1][1], LINES[3][1]} and by_peer
    by_session = await search(stubs, ws, "nurse hospital", session_id="s0")
    assert LINES[2][1] in by_session and LINES[1][1] not in by_session
    flt = struct_pb2.Struct()
    flt.update({"peer_id": "alice"})
    filtered = await search(stubs, ws, "ramen spicy food", filters=flt)
    assert LINES[1][1] not in filtered


async def test_search_bad_input(stubs: Stubs, ws: str) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await fails(stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="")), invalid, field="query")
    await fails(stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="x", limit=101)), invalid, field="limit")
    flt = struct_pb2.Struct()
    flt.update({"nope": 1})
    await fails(stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="x", filters=flt)), invalid)
