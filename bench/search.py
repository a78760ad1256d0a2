"""Search and list latency at 10k and 100k messages, query embedding included.

Loads messages through ImportMessages, waits for the embedding backlog to drain (so the
vector arm is complete), then times SearchMessages (workspace, session and peer scope) and
ListMessages pages at every depth.

    .venv/bin/python -m bench.search [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import AsyncIterator

import asyncpg
import grpc
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc, search_pb2, search_pb2_grpc

from bench.common import percentiles, print_table, server_process, write_json
from bench.ingest import text

QUERIES = ["where did they move last spring", "what instrument is she learning",
           "who works as a veterinarian", "when is the hiking trip", "how is the new job",
           "cats", "cello lessons", "evening light in Lisbon"]
SESSIONS = 20   # each holds 5% of the messages
PEERS = 4       # each wrote 25%


async def load(address: str, ws: str, total: int) -> None:
    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        # Chunks of 500 go round the sessions, so that every session gets its share at
        # 10k messages too.
        for c in range(total // 500):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=ws, session_id=f"s{c % SESSIONS}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % PEERS}", content=text(i))
                          for i in range(c * 500, c * 500 + 500)])

    async with grpc.aio.insecure_channel(address) as channel:
        await message_pb2_grpc.MessageServiceStub(channel).ImportMessages(chunks(), timeout=900)


async def wait_backlog(dsn: str) -> float:
    start = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        while await conn.fetchval("SELECT count(*) FROM embedding_backlog"):
            await asyncio.sleep(1)
    finally:
        await conn.close()
    return time.perf_counter() - start


async def synthetic_vectors(dsn: str) -> float:
    """Fill the vector arm without the model: random unit vectors written in bulk, the HNSW
    index rebuilt once, corpus statistics computed, the backlog emptied. For latency at sizes
    whose real embedding would take longer than the run (the int8 model embeds ~100 msg/s on
    2 cores); query embedding still uses the real model inside the server."""
    start = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP INDEX message_embeddings_hnsw")
        await conn.execute(
            "INSERT INTO message_embeddings (workspace_id, message_id, session_id, peer_id, "
            "model, embedding) SELECT m.workspace_id, m.message_id, m.session_id, m.peer_id, "
            "'synthetic', "
            "l2_normalize((SELECT array_agg(random() - 0.5) FROM generate_series(1, 384) "
            "WHERE m.seq > 0)::vector) FROM messages m ON CONFLICT DO NOTHING")
        await conn.execute("CREATE INDEX message_embeddings_hnsw ON message_embeddings "
                           "USING hnsw (embedding vector_cosine_ops)")
        await conn.execute(
            "INSERT INTO lexeme_stats (workspace_id, lexeme, ndoc) SELECT m.workspace_id, "
            "u.lexeme, count(*) FROM messages m, unnest(m.search_text) u "
            "GROUP BY 1, 2 ON CONFLICT DO NOTHING")
        await conn.execute(
            "INSERT INTO search_stats (workspace_id, docs, total_length) SELECT workspace_id, "
            "count(*), sum(length(search_text)) FROM messages GROUP BY 1 ON CONFLICT DO NOTHING")
        await conn.execute(
            "INSERT INTO scope_stats (workspace_id, kind, scope_id, docs) "
            "SELECT workspace_id, 'session', session_id, count(*) FROM messages GROUP BY 1, 3 "
            "UNION ALL SELECT workspace_id, 'peer', peer_id, count(*) FROM messages "
            "GROUP BY 1, 3 ON CONFLICT DO NOTHING")
        await conn.execute("DELETE FROM embedding_backlog")
        await conn.execute("ANALYZE")  # as autovacuum would within a minute of the load
    finally:
        await conn.close()
    return time.perf_counter() - start


async def settle(dsn: str) -> None:
    """Vacuum and analyse the freshly loaded tables now, as autovacuum would soon: the
    figures are those of the steady state, not of a run sharing the two cores with
    autovacuum's first pass over 100k rows (which put p99 at 45 ms in one run)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def time_calls(n: int, call) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def measure(address: str, ws: str, queries: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        search = search_pb2_grpc.SearchServiceStub(channel)
        messages = message_pb2_grpc.MessageServiceStub(channel)

        async def ws_search(i: int) -> None:
            await search.SearchMessages(search_pb2.SearchMessagesRequest(
                workspace_id=ws, query=f"{QUERIES[i % len(QUERIES)]} {i}", limit=10), timeout=10)

        async def session_search(i: int) -> None:
            await search.SearchMessages(search_pb2.SearchMessagesRequest(
                workspace_id=ws, session_id=f"s{i % SESSIONS}",
                query=f"{QUERIES[i % len(QUERIES)]} {i}", limit=10), timeout=10)

        async def peer_search(i: int) -> None:
            await search.SearchMessages(search_pb2.SearchMessagesRequest(
                workspace_id=ws, peer_id=f"p{i % PEERS}",
                query=f"{QUERIES[i % len(QUERIES)]} {i}", limit=10), timeout=10)

        tokens = [""]
        page = await messages.ListMessages(message_pb2.ListMessagesRequest(
            workspace_id=ws, session_id="s0", page_size=50))
        while page.next_page_token:
            tokens.append(page.next_page_token)
            page = await messages.ListMessages(message_pb2.ListMessagesRequest(
                workspace_id=ws, session_id="s0", page_size=50,
                page_token=page.next_page_token))
        rng = random.Random(7)

        async def list_page(i: int) -> None:
            await messages.ListMessages(message_pb2.ListMessagesRequest(
                workspace_id=ws, session_id="s0", page_size=50,
                page_token=rng.choice(tokens)), timeout=10)

        await time_calls(20, ws_search)  # warm-up
        for name, fn in (("SearchMessages (workspace)", ws_search),
                         ("SearchMessages (session)", session_search),
                         ("SearchMessages (peer)", peer_search),
                         ("ListMessages page (random depth)", list_page)):
            rows.append({"call": name, **percentiles(await time_calls(queries, fn))})
    return rows


async def main(sizes: list[int], queries: int, synthetic: bool) -> None:
    results: dict[str, object] = {}
    for size in sizes:
        env = {"SERVER_EMBED_IN_SERVER": "false"} if synthetic else {}
        with server_process(**env) as server:
            ws = f"bench-{size}"
            start = time.perf_counter()
            await load(server.address, ws, size)
            load_s = time.perf_counter() - start
            drain_s = await (synthetic_vectors(server.dsn()) if synthetic
                             else wait_backlog(server.dsn()))
            await settle(server.dsn())
            rows = await measure(server.address, ws, queries)
            rss = server.rss_mb()
        for r in rows:
            r["messages"] = size
        how = "synthetic vectors written in" if synthetic else "embedding backlog drained in"
        print_table(f"{size} messages (import {load_s:.1f}s, {how} {drain_s:.1f}s, server RSS "
                    f"{rss:.0f} MB)", rows)
        results[str(size)] = {"rows": rows, "import_s": round(load_s, 1),
                              "synthetic_vectors": synthetic,
                              "embed_drain_s": round(drain_s, 1), "server_rss_mb": round(rss)}
    write_json("search", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--synthetic-vectors", action="store_true",
                        help="random stored vectors instead of embedding every message")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.queries, args.synthetic_vectors))
