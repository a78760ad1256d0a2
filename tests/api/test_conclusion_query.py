"""Vector searches are filtered (a pair, a session, a workspace), and a plain HNSW scan only
filters the `ef_search` (40) nearest rows of the whole index: a pair whose conclusions are all
farther from the query than another pair's would get none back. Pooled connections run
iterative scans (db/pool.py), which go on until enough rows pass the filter. At test sizes
the planner prefers an exact scan, so the index path is forced here, as a large table
would choose it."""

from __future__ import annotations

from honcho_grpc_proto.v1 import conclusion_pb2 as pb
from honcho_grpc_proto.v1 import peer_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.store.conclusions import query_conclusions
from tests.conftest import Stubs

QUERY = "hiking trails"


async def seed(stubs: Stubs, ws: str) -> list[str]:
    """600 conclusions of bob about alice, all near the query; 60 of carol about dave, far."""
    for peer in ("alice", "bob", "carol", "dave"):
        await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(workspace_id=ws,
                                                                          peer_id=peer))
    for start in range(0, 600, 100):
        await stubs.conclusions.CreateConclusions(pb.CreateConclusionsRequest(
            workspace_id=ws, conclusions=[
                pb.ConclusionInput(observer_id="bob", observed_id="alice",
                                   content=f"alice likes hiking trails, walk {i}")
                for i in range(start, start + 100)]))
    own = [f"dave collects stamps, album {i}" for i in range(60)]
    await stubs.conclusions.CreateConclusions(pb.CreateConclusionsRequest(
        workspace_id=ws, conclusions=[pb.ConclusionInput(observer_id="carol",
                                                         observed_id="dave", content=c)
                                      for c in own]))
    return own


async def test_hnsw_scan_finds_a_far_pairs_conclusions(stubs: Stubs, db: Database,
                                                        ws: str) -> None:
    own = await seed(stubs, ws)
    vector = (await FakeEmbedder(384).embed([QUERY]))[0]
    async with db.pool.acquire() as conn, conn.transaction():
        # Make the exact plans (a sequential or pair-index scan, then a sort) look dear.
        await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN SELECT conclusion_id FROM conclusions c WHERE c.workspace_id = $1 "
            "AND c.observer_id = 'carol' AND c.observed_id = 'dave' "
            "ORDER BY c.embedding <=> $2 LIMIT 10", ws, vector))
        assert "conclusions_hnsw" in plan
        found = await query_conclusions(conn, ws, "carol", "dave", vector, 10, 0.0, None)
    assert len(found) == 10
    assert {c.content for c in found} <= set(own)


async def test_query_conclusions_returns_the_pairs_nearest(stubs: Stubs, ws: str) -> None:
    own = await seed(stubs, ws)
    found = await stubs.conclusions.QueryConclusions(pb.QueryConclusionsRequest(
        workspace_id=ws, observer_id="carol", observed_id="dave", query="stamps album 7",
        top_k=5))
    contents = [c.content for c in found.conclusions]
    assert len(contents) == 5 and set(contents) <= set(own)
    assert contents[0] == "dave collects stamps, album 7"
