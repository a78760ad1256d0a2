"""Ingest throughput: CreateMessages in batches of 100, ImportMessages, and a raw asyncpg COPY
of the same rows into the messages table (the ceiling: no validation, no token counting, no
membership, no backlog, no queue).

    .venv/bin/python -m bench.ingest [--messages 20000] [--concurrency 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc

from bench.common import print_table, server_process, write_json
from honcho_grpc.providers.tokens import count_tokens_batch

SENTENCES = [
    "I moved to Lisbon last spring and I love the light in the evenings.",
    "My sister works as a veterinarian and has three cats.",
    "We should plan the hiking trip for the second week of October.",
    "Honestly the new job is stressful but the team is great.",
    "I've been learning to play the cello for about two years now.",
]


def text(i: int) -> str:
    return f"{SENTENCES[i % len(SENTENCES)]} (note {i})"


async def create_messages(address: str, total: int, concurrency: int, ws: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        batches = [
            message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=f"s{b % 8}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % 4}", content=text(i))
                          for i in range(b * 100, b * 100 + 100)])
            for b in range(total // 100)
        ]
        queue: asyncio.Queue[message_pb2.CreateMessagesRequest] = asyncio.Queue()
        for b in batches[1:]:
            queue.put_nowait(b)

        async def worker() -> None:
            while not queue.empty():
                await stub.CreateMessages(queue.get_nowait(), timeout=60)

        await stub.CreateMessages(batches[0], timeout=60)  # warm-up (not timed)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


async def import_messages(address: str, total: int, ws: str) -> float:
    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        for c in range(total // 1000):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=ws, session_id=f"s{c % 8}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % 4}", content=text(i))
                          for i in range(c * 1000, c * 1000 + 1000)])

    async with grpc.aio.insecure_channel(address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        start = time.perf_counter()
        reply = await stub.ImportMessages(chunks(), timeout=600)
        elapsed = time.perf_counter() - start
        assert reply.imported_count == total
        return elapsed


async def raw_copy(dsn: str, total: int, ws: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspaces (workspace_id) VALUES ($1)", ws)
        await conn.execute("INSERT INTO sessions (workspace_id, session_id) VALUES ($1, 's')", ws)
        await conn.executemany("INSERT INTO peers (workspace_id, peer_id) VALUES ($1, $2)",
                               [(ws, f"p{i}") for i in range(4)])
        texts = [text(i) for i in range(total)]
        start = time.perf_counter()
        tokens = count_tokens_batch(texts)  # the rows need token counts, as ours do
        records = [(ws, uuid.uuid4().hex[:21], "s", f"p{i % 4}", i + 1, t, "{}", "{}", "{}", n)
                   for i, (t, n) in enumerate(zip(texts, tokens, strict=True))]
        await conn.copy_records_to_table(
            "messages", records=records,
            columns=["workspace_id", "message_id", "session_id", "peer_id", "seq", "content",
                     "metadata", "configuration", "internal_metadata", "token_count"])
        return time.perf_counter() - start
    finally:
        await conn.close()


async def main(total: int, concurrency: int, embed_in_server: bool, repeat: int) -> None:
    # By default the backlog is written but drained elsewhere (the worker, another machine):
    # on 2 cores the int8 model embeds ~115 msg/s and would otherwise share the CPU.
    env = {"SERVER_EMBED_IN_SERVER": "true" if embed_in_server else "false"}
    with server_process(**env) as server:
        t_create = await create_messages(server.address, total, concurrency, "bench-create")
        # Import and COPY alternate, `repeat` times each (the COPY rate alone varies by 15%
        # between runs on this machine); the medians are compared.
        imports, copies = [], []
        for r in range(repeat):
            imports.append(await import_messages(server.address, total, f"bench-import-{r}"))
            copies.append(await raw_copy(server.dsn(), total, f"bench-copy-{r}"))
        t_import, t_copy = statistics.median(imports), statistics.median(copies)
        rss = server.rss_mb()
    rows = [
        {"path": f"CreateMessages x100 (concurrency {concurrency})", "messages": total - 100,
         "seconds": round(t_create, 2), "msg_per_s": round((total - 100) / t_create)},
        {"path": f"ImportMessages (chunks of 1000, median of {repeat})", "messages": total,
         "seconds": round(t_import, 2), "msg_per_s": round(total / t_import)},
        {"path": f"raw asyncpg COPY (ceiling, median of {repeat})", "messages": total,
         "seconds": round(t_copy, 2), "msg_per_s": round(total / t_copy)},
    ]
    print_table(f"Ingest (embedded PostgreSQL, fsync on, 2 cores, embedder in server: "
                f"{embed_in_server})", rows)
    ratio = (total / t_import) / (total / t_copy)
    print(f"ImportMessages reaches {ratio:.0%} of the raw COPY rate; server RSS {rss:.0f} MB")
    write_json("ingest", {"rows": rows, "import_vs_copy": round(ratio, 3),
                          "import_s": [round(t, 3) for t in imports],
                          "copy_s": [round(t, 3) for t in copies],
                          "embed_in_server": embed_in_server,
                          "server_rss_mb": round(rss)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--embed-in-server", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.concurrency, args.embed_in_server, args.repeat))
