"""The offline all-MiniLM-L6-v2 int8 model for real: vectors, the backlog drain and a search
whose query shares no word with the answer (only the vector arm can find it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from honcho_grpc_proto.v1 import message_pb2, search_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import LOCAL_MODEL_ID, LocalEmbedder, check_dimensions
from honcho_grpc.server.app import Running, start
from tests.conftest import drain_backlog, make_settings, make_stubs


@pytest.fixture(scope="module")
def model() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.warm()
    return embedder


async def test_vectors(model: LocalEmbedder) -> None:
    texts = ["I love hiking in the mountains", "hiking trips in the alps",
             "the stock market fell sharply", "x " * 400]
    vectors = await model.embed(texts)
    assert all(v.shape == (384,) for v in vectors)
    assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in vectors)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3
    # Order is preserved whatever the lengths (they are batched by length inside).
    again = await model.embed(list(reversed(texts)))
    assert np.allclose(again[0], vectors[3], atol=1e-5)
    await check_dimensions(model, 384)
    with pytest.raises(RuntimeError, match="768"):
        await check_dimensions(model, 768)


@pytest.fixture(scope="module")
async def real_server(pg_dsn: str, db: Database, model: LocalEmbedder) -> AsyncIterator[Running]:
    settings = make_settings(pg_dsn, embedding={"provider": "local"})
    running = await start(settings, db, embedder=model, background=False)
    yield running
    await running.stop(grace=1.0)


async def test_semantic_search_through_the_backlog(real_server: Running, db: Database,
                                                   ws: str) -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{real_server.port}")
    stubs = make_stubs(channel)
    texts = ["I adopted a golden retriever puppy last week", "The quarterly report is late",
             "My sister moved to Berlin", "We repainted the kitchen blue"]
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s",
        messages=[message_pb2.MessageInput(peer_id="alice", content=t) for t in texts]))
    await drain_backlog(db, real_server.deps.embedder)
    assert await db.pool.fetchval("SELECT count(*) FROM message_embeddings WHERE "
                                  "workspace_id = $1 AND model = $2", ws,
                                  LOCAL_MODEL_ID) == 4
    r = await stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
        workspace_id=ws, query="new dog", limit=1))
    assert r.hits[0].message.content == texts[0]
    await channel.close()
