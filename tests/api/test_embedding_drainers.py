"""The embedding backlog's drain loops: several run at once (one batch in the model while
another is written), each message is embedded once, with its own vector, and counted once
in the search statistics."""

from __future__ import annotations

import asyncio

from honcho_grpc_proto.v1 import message_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.domain import embedding
from honcho_grpc.domain.embedding import EmbeddingBacklog, embedding_text
from honcho_grpc.providers.embeddings import FakeEmbedder
from tests.conftest import Stubs, drain_backlog


async def test_drain_loops_share_the_backlog(stubs: Stubs, db: Database, ws: str) -> None:
    await drain_backlog(db)  # other tests' leftovers
    texts = [f"line {i} about {word}" for i, word in enumerate(
        ["cellos", "ferries", "lemons", "granite", "owls", "kites", "tea", "maps", "bees"])]
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="ann", content=t) for t in texts]))
    embedder = FakeEmbedder(384)
    backlog = EmbeddingBacklog(db.pool, embedder, batch_size=2, poll_seconds=0.1)
    stop = asyncio.Event()
    assert embedding.DRAINERS > 1
    task = asyncio.create_task(backlog.run(stop))
    try:
        async with asyncio.timeout(30):
            while await backlog.pending():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    # Each row holds its own message's vector (the batch is written as one statement).
    vectors = embedder.embed_sync([embedding_text("ann", t) for t in texts])
    for text, vector in zip(texts, vectors, strict=True):
        cosine = await db.pool.fetchval(
            "SELECT 1 - (e.embedding <=> $3::halfvec) FROM message_embeddings e "
            "JOIN messages m USING (workspace_id, message_id) "
            "WHERE e.workspace_id = $1 AND m.content = $2", ws, text, vector)
        assert cosine > 0.999, text
    assert await db.pool.fetchval(
        "SELECT docs FROM search_stats WHERE workspace_id = $1", ws) == len(texts)
    assert await db.pool.fetchval(
        "SELECT docs FROM scope_stats WHERE workspace_id = $1 AND kind = 'session'", ws) == 9
