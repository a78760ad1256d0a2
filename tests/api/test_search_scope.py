"""The vector arm within a session or a peer: vectors carry their scope, each scope its count
of embedded messages, and a small scope is ranked exactly while a large one goes through the
HNSW index (store/search.py), each forced whatever the planner's statistics say. Both ways
must return the scope's true nearest vectors."""

from __future__ import annotations

import numpy as np
import pytest
from honcho_grpc_proto.v1 import message_pb2, peer_pb2, session_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.store import filters as f
from honcho_grpc.store import search as store
from honcho_grpc.store.schema import reset_embeddings
from honcho_grpc.store.search import Scope
from tests.conftest import Stubs, drain_backlog

QUERY = "a walk along the river at dusk"


async def seed(stubs: Stubs, ws: str) -> None:
    """s-big: 240 messages by alice and bob; s-small: 24 by carol."""
    for session, peers, count in (("s-big", ("alice", "bob"), 240), ("s-small", ("carol",), 24)):
        for start in range(0, count, 60):
            await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=session, messages=[
                    message_pb2.MessageInput(peer_id=peers[i % len(peers)],
                                             content=f"{session} note {i} about the river")
                    for i in range(start, min(start + 60, count))]))


async def scope_counts(db: Database, ws: str) -> dict[tuple[str, str], int]:
    rows = await db.pool.fetch(
        "SELECT kind, scope_id, docs FROM scope_stats WHERE workspace_id = $1", ws)
    return {(r["kind"], r["scope_id"]): r["docs"] for r in rows}


async def true_counts(db: Database, ws: str) -> dict[tuple[str, str], int]:
    rows = await db.pool.fetch(
        "SELECT 'session' AS kind, session_id AS scope_id, count(*) AS n "
        "FROM message_embeddings WHERE workspace_id = $1 GROUP BY 2 UNION ALL "
        "SELECT 'peer', peer_id, count(*) FROM message_embeddings WHERE workspace_id = $1 "
        "GROUP BY 2", ws)
    return {(r["kind"], r["scope_id"]): r["n"] for r in rows}


async def test_vectors_carry_their_scope_and_counts_follow(stubs: Stubs, db: Database,
                                                           ws: str) -> None:
    await seed(stubs, ws)
    await drain_backlog(db)
    assert not await db.pool.fetchval(
        "SELECT count(*) FROM message_embeddings e JOIN messages m USING (workspace_id, "
        "message_id) WHERE e.workspace_id = $1 AND (e.session_id <> m.session_id "
        "OR e.peer_id <> m.peer_id)", ws)
    counts = await scope_counts(db, ws)
    assert counts == await true_counts(db, ws)
    assert counts[("session", "s-big")] == 240 and counts[("peer", "carol")] == 24

    one = await db.pool.fetchval("SELECT message_id FROM messages WHERE workspace_id = $1 "
                                 "AND session_id = 's-big' AND peer_id = 'bob' LIMIT 1", ws)
    await stubs.messages.DeleteMessage(message_pb2.DeleteMessageRequest(
        workspace_id=ws, session_id="s-big", message_id=one))
    await stubs.sessions.DeleteSession(session_pb2.DeleteSessionRequest(
        workspace_id=ws, session_id="s-small"))
    await stubs.peers.DeletePeer(peer_pb2.DeletePeerRequest(workspace_id=ws, peer_id="alice"))
    counts = await scope_counts(db, ws)
    assert counts == await true_counts(db, ws) == {("session", "s-big"): 119,
                                                   ("peer", "bob"): 119}


def nearest(vectors: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[str]:
    return sorted(vectors, key=lambda i: -float(np.dot(vectors[i], query)))[:k]


@pytest.mark.parametrize("path", ["exact", "hnsw"])
async def test_both_plans_find_the_scopes_nearest(stubs: Stubs, db: Database, ws: str,
                                                  path: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    await seed(stubs, ws)
    await drain_backlog(db)
    small, indexed = 24, 10 ** 6
    if path == "hnsw":  # every scope counts as large: the index's iterative scan
        monkeypatch.setattr(store, "EXACT_SCAN_MIN", 0)
        monkeypatch.setattr(store, "EXACT_SCAN_FACTOR", 0)
    assert store.exact_scan_pays(small, indexed) == (path == "exact")
    query = (await FakeEmbedder(384).embed([QUERY]))[0]
    rows = await db.pool.fetch(
        "SELECT message_id, peer_id, embedding FROM message_embeddings "
        "WHERE workspace_id = $1 AND session_id = 's-small'", ws)
    vectors = {r["message_id"]: r["embedding"].to_numpy() for r in rows}
    async def nearest_of(scope: Scope, filters: dict[str, str] | None) -> list[str]:
        async with db.pool.acquire() as conn, conn.transaction():
            exact = await store.plan_vector_scan(conn, scope, 10)
            assert exact == (path == "exact")
            params = f.Params()
            sql = store.vector_candidates_sql(scope, filters, params.add(query), 10, exact,
                                              params)
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *params.values))
            assert ("message_embeddings_hnsw" in plan) == (path == "hnsw"), plan
            return [r["message_id"] for r in await conn.fetch(sql, *params.values)]

    found = await nearest_of(Scope(ws, session_id="s-small"), None)
    by_filter = await nearest_of(Scope(ws), {"session_id": "s-small"})
    by_peer = await nearest_of(Scope(ws, peer_id="carol"), None)
    expected = nearest(vectors, query, 10)
    if path == "exact":
        assert found == by_filter == by_peer == expected
        return
    # The index is approximate, and this database's index holds every test's vectors: each
    # answer is the scope's own, and at most one of the true ten is missed.
    for answer in (found, by_filter, by_peer):
        assert len(answer) == 10 and set(answer) <= set(vectors)
        assert len(set(answer) & set(expected)) >= 9, (answer, expected)


async def test_reset_embeddings_counts_from_zero(stubs: Stubs, db: Database, ws: str) -> None:
    """Re-embedding everything must not count the messages twice."""
    await seed(stubs, ws)
    await drain_backlog(db)
    before = (await scope_counts(db, ws),
              await db.pool.fetchval("SELECT docs FROM search_stats WHERE workspace_id = $1", ws),
              await db.pool.fetchval("SELECT ndoc FROM lexeme_stats WHERE workspace_id = $1 "
                                     "AND lexeme = 'river'", ws))
    async with db.pool.acquire() as conn:
        await reset_embeddings(conn, 384)
    await drain_backlog(db)
    after = (await scope_counts(db, ws),
             await db.pool.fetchval("SELECT docs FROM search_stats WHERE workspace_id = $1", ws),
             await db.pool.fetchval("SELECT ndoc FROM lexeme_stats WHERE workspace_id = $1 "
                                    "AND lexeme = 'river'", ws))
    assert before == after and before[1] == before[2] == 264
