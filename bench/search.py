"""Search and list latency at 10k and 100k messages, query embedding included.

Loads messages through ImportMessages, waits for the embedding backlog to drain (so the
vector arm is complete), then times SearchMessages (workspace and session scope) and
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

from bench.common import percentiles, print_table, server_process, write_json
from bench.ingest import text
from honcho_grpc.gen.honcho.v1 import message_pb2, message_pb2_grpc, search_pb2, search_pb2_grpc

QUERIES = ["where did they move last spring", "what instrument is she learning",
           "who works as a veterinarian", "when is the hiking trip", "how is the new job",
           "cats", "cello lessons", "evening light in Lisbon"]
SESSIONS = 20


async def load(address: str, ws: str, total: int) -> None:
    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        for c in range(total // 1000):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=ws, session_id=f"s{c % SESSIONS}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % 4}", content=text(i))
                          for i in range(c * 1000, c * 1000 + 1000)])

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
                         ("ListMessages page (random depth)", list_page)):
            rows.append({"call": name, **percentiles(await time_calls(queries, fn))})
    return rows


async def main(sizes: list[int], queries: int) -> None:
    results: dict[str, object] = {}
    for size in sizes:
        with server_process() as server:
            ws = f"bench-{size}"
            start = time.perf_counter()
            await load(server.address, ws, size)
            load_s = time.perf_counter() - start
            drain_s = await wait_backlog(server.dsn())
            rows = await measure(server.address, ws, queries)
            rss = server.rss_mb()
        for r in rows:
            r["messages"] = size
        print_table(f"{size} messages (import {load_s:.1f}s, embedding backlog drained in "
                    f"{drain_s:.1f}s, server RSS {rss:.0f} MB)", rows)
        results[str(size)] = {"rows": rows, "import_s": round(load_s, 1),
                              "embed_drain_s": round(drain_s, 1), "server_rss_mb": round(rss)}
    write_json("search", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.queries))
