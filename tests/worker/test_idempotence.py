"""At-least-once delivery never duplicates a conclusion: a replayed batch writes nothing, and
repeats (exact after normalising, or within cosine distance 0.05) reinforce instead."""

from __future__ import annotations

import numpy as np
from honcho_grpc_proto.v1 import message_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.domain import conclusions as writer
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.reasoning import Reasoner
from honcho_grpc.worker.tasks import TaskContext, representation
from tests.conftest import Stubs
from tests.worker.conftest import worker_settings


async def test_a_replayed_batch_writes_nothing_twice(stubs: Stubs, db: Database, pg_dsn: str,
                                                     ws: str) -> None:
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="ann", content="I knit scarves."),
            message_pb2.MessageInput(peer_id="ann", content="I bake sourdough bread.")]))
    rows = await db.pool.fetch(
        "SELECT * FROM queue WHERE workspace_id = $1 AND task_type = 'representation' "
        "ORDER BY id", ws)
    jobs = [Job(r["id"], ws, r["task_type"], r["work_unit_key"], r["session_id"], r["payload"],
                1, r["created_at"]) for r in rows]
    settings = worker_settings(pg_dsn, [ws])
    ctx = TaskContext(db.pool, settings, Reasoner.from_settings(settings), FakeEmbedder())
    for _ in range(2):  # the second run is a redelivery of the same rows
        result = await representation.run(ctx, jobs)
        assert result.apply is not None
        async with db.pool.acquire() as conn, conn.transaction():
            await result.apply(conn)
    found = await db.pool.fetch(
        "SELECT content, times_derived FROM conclusions WHERE workspace_id = $1 "
        "ORDER BY content", ws)
    assert [(r["content"], r["times_derived"]) for r in found] == [
        ("ann bakes sourdough bread", 1), ("ann knits scarves", 1)]


async def test_exact_and_near_repeats_reinforce(db: Database, ws: str) -> None:
    await db.pool.execute("INSERT INTO workspaces (workspace_id) VALUES ($1)", ws)
    await db.pool.execute("INSERT INTO peers (workspace_id, peer_id) VALUES ($1, 'ann')", ws)
    rng = np.random.default_rng(7)
    base = rng.standard_normal(384).astype(np.float32)
    base /= np.linalg.norm(base)
    near = base + 0.01 * rng.standard_normal(384).astype(np.float32)
    near /= np.linalg.norm(near)
    far, other = (v / np.linalg.norm(v) for v in rng.standard_normal((2, 384)).astype(np.float32))
    assert 1 - float(base @ near) <= 0.05 < 1 - float(base @ far)
    pair = writer.Pair(ws, "ann", "ann")
    async with db.pool.acquire() as conn, conn.transaction():
        first = await writer.write_derived(conn, pair, [writer.Candidate(
            "ann likes green tea", "explicit", base)], model="m", metadata={})
    async with db.pool.acquire() as conn, conn.transaction():
        again = await writer.write_derived(conn, pair, [
            writer.Candidate("  Ann LIKES green   tea ", "explicit", far),  # exact
            writer.Candidate("ann enjoys green tea", "explicit", near),  # near
            writer.Candidate("ann likes green tea", "deductive", base),  # other level
            writer.Candidate("ann owns a boat", "explicit", other),
        ], model="m", metadata={})
    assert again.reinforced == first.created and len(again.created) == 2
    rows = await db.pool.fetch(
        "SELECT content, level, times_derived FROM conclusions WHERE workspace_id = $1 "
        "ORDER BY content, level", ws)
    assert [(r["content"], r["level"], r["times_derived"]) for r in rows] == [
        ("ann likes green tea", "deductive", 1), ("ann likes green tea", "explicit", 3),
        ("ann owns a boat", "explicit", 1)]


async def test_a_repeat_resting_on_known_evidence_counts_nothing(db: Database, ws: str) -> None:
    """A dream that derives the same pattern from premises the stored conclusion already
    cites has learnt nothing; one citing a new premise (or message) reinforces it."""
    await db.pool.execute("INSERT INTO workspaces (workspace_id) VALUES ($1)", ws)
    await db.pool.execute("INSERT INTO peers (workspace_id, peer_id) VALUES ($1, 'ann')", ws)
    pair = writer.Pair(ws, "ann", "ann")

    def pattern(*premises: str) -> writer.Candidate:
        return writer.Candidate("ann repeatedly bakes: bread; pies", "inductive", None,
                                premise_ids=list(premises))

    async with db.pool.acquire() as conn, conn.transaction():
        first = await writer.write_derived(conn, pair, [pattern("c1", "c2")], model=None,
                                           metadata={})
    async with db.pool.acquire() as conn, conn.transaction():
        same = await writer.write_derived(conn, pair, [pattern("c2", "c1"), pattern("c1")],
                                          model=None, metadata={})
    assert same.created == [] and same.reinforced == []
    async with db.pool.acquire() as conn, conn.transaction():
        wider = await writer.write_derived(conn, pair, [pattern("c1", "c3")], model=None,
                                           metadata={})
    assert wider.reinforced == first.created
    assert await db.pool.fetchval(
        "SELECT times_derived FROM conclusions WHERE workspace_id = $1", ws) == 2
