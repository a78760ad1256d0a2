"""Hybrid search: full text finds messages before they are embedded, vectors after; scopes
and filters narrow the results."""

from __future__ import annotations

from datetime import UTC, datetime

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


async def text_only(db: Database, ws: str) -> None:
    """Embed, then drop the vectors: what is found is then the text arm's doing."""
    await drain_backlog(db)
    await db.pool.execute("DELETE FROM message_embeddings WHERE workspace_id = $1", ws)


async def test_a_speaker_named_in_the_query_is_matched(stubs: Stubs, db: Database,
                                                       ws: str) -> None:
    """A speaker is indexed unstemmed ("james"), a query's words stemmed ("jame"): the
    query's unstemmed names must meet the speaker's."""
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id=peer, content=text) for peer, text in [
                ("Anna", "I went hiking in the hills"), ("James", "I baked sourdough bread"),
                ("Anna", "The weather was lovely"), ("Anna", "My sister visited")]]))
    await text_only(db, ws)
    assert (await search(stubs, ws, "What did James do?", limit=1)) == [
        "I baked sourdough bread"]


async def test_words_in_many_messages_still_find_candidates(stubs: Stubs, db: Database,
                                                            ws: str) -> None:
    """"guitar" is in a quarter of the messages, "weekends" in one without it: both find
    candidates (a small workspace ranks every message saying a word in no time)."""
    texts = [f"I practised guitar chords, song {i}" if i % 4 == 0 else f"Lunch was soup {i}"
             for i in range(40)]
    texts.append("Weekends are for sleeping in")
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s",
        messages=[message_pb2.MessageInput(peer_id="ann", content=t) for t in texts]))
    await text_only(db, ws)
    found = await search(stubs, ws, "who plays guitar on weekends", limit=20)
    assert sum("guitar" in t for t in found) == 10 and "Weekends are for sleeping in" in found


async def test_a_date_in_the_query_weighs_create_time(stubs: Stubs, db: Database,
                                                      ws: str) -> None:
    """The same words on three days (in three sessions: no message is another's neighbour):
    the query's date picks the day, written either way."""
    for d in (2, 3, 4):
        m = message_pb2.MessageInput(peer_id="ann", content="I painted a sunset")
        m.create_time.FromDatetime(datetime(2024, 3, d, 15, tzinfo=UTC))
        m.metadata.update({"day": d})
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=f"s{d}", messages=[m]))
    await drain_backlog(db)

    async def days(query: str) -> list[int]:
        r = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
            workspace_id=ws, query=query, limit=3))
        return [int(h.message.metadata["day"]) for h in r.hits]

    for query in ("What did ann paint on 3 March 2024?", "ann's painting, March 3, 2024"):
        assert (await days(query))[0] == 3
    assert (await days("what did ann paint on 4 March 2024"))[0] == 4
    hits = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="what did ann paint on 4 March 2024", limit=3))
    assert hits.hits[0].score > hits.hits[1].score == hits.hits[2].score


async def test_the_turn_next_to_a_match_is_lifted(stubs: Stubs, db: Database, ws: str) -> None:
    """A reply that shares no word with the question still ranks, beside the turn that
    does; a turn in another session does not."""
    turns = [("bob", "What did you bake for the fair?"), ("ann", "A lemon drizzle, my first!"),
             ("bob", "The weather turned cold"), ("ann", "I cleaned the garage")]
    for session in ("s1", "s2"):
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=session, messages=[
                message_pb2.MessageInput(peer_id=p, content=t) for p, t in (
                    turns[:2] if session == "s1" else turns[2:])]))
    await text_only(db, ws)
    r = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="what was baked for the fair", limit=4))
    assert [h.message.content for h in r.hits[:2]] == [turns[0][1], turns[1][1]]
    assert r.hits[1].score >= 0.8 * r.hits[0].score - 1e-9
    assert all(h.score < r.hits[1].score for h in r.hits[2:])


async def test_a_named_speaker_s_own_words_come_first(stubs: Stubs, db: Database,
                                                      ws: str) -> None:
    """A question about someone is answered by their own words: James's question and Anna's
    answer match the query's words equally (BM25 ties), and naming Anna puts hers first by
    the speaker's bonus. In separate sessions: neither lifts the other as its neighbour."""
    for session, (peer, text) in enumerate([("James", "Anna, do you like cooking?"),
                                            ("Anna", "I bake bread on Sundays")]):
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=f"s{session}",
            messages=[message_pb2.MessageInput(peer_id=peer, content=text)]))
    await text_only(db, ws)
    r = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="What does Anna like to bake?", limit=2))
    assert [h.message.peer_id for h in r.hits] == ["Anna", "James"]
    assert r.hits[0].score - r.hits[1].score > 0.1
