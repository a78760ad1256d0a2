"""From acknowledged to searchable to fully processed, with the system run as users run it
(`honcho-grpc up`: server with its embedder, worker with the local provider).

One client writes N messages with CreateMessages (batches of 100): the acknowledged rate.
Then GetQueueStatus is polled, as a caller would: the messages are all vector-searchable when
its embedding backlog is empty, fully processed when the derivation queue is empty too. The
ceiling is the offline model's own rate on this machine, measured in the same run (before the
server starts, on the same texts, in the same batch size as the backlog).

    .venv/bin/python -m bench.searchable [--messages 10000] [--wait 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import grpc
from honcho_grpc_proto.v1 import (
    message_pb2,
    message_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from bench.common import print_table, server_process, write_json
from bench.ingest import text
from honcho_grpc.domain.embedding import embedding_text
from honcho_grpc.providers.embeddings import LocalEmbedder

BATCH = 100


def model_rate(n: int, batch: int = 64) -> float:
    """Texts a second the offline model embeds here, alone."""
    embedder = LocalEmbedder()
    texts = [embedding_text(f"p{i % 4}", text(i)) for i in range(n)]
    embedder.embed_sync(texts[:batch])  # load and warm up
    start = time.perf_counter()
    for i in range(0, n, batch):
        embedder.embed_sync(texts[i:i + batch])
    return n / (time.perf_counter() - start)


async def write(address: str, ws: str, total: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        start = time.perf_counter()
        for b in range(total // BATCH):
            await stub.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=f"s{b % 8}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % 4}", content=text(i))
                          for i in range(b * BATCH, b * BATCH + BATCH)]), timeout=60)
        return time.perf_counter() - start


async def wait_done(address: str, ws: str, start: float, limit_s: float
                    ) -> tuple[float | None, float | None, int]:
    """Seconds since `start` until nothing waits for embedding, and until nothing waits for
    derivation either (None: not within `limit_s`); and the derivation jobs still open."""
    searchable = processed = None
    open_jobs = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
        while time.perf_counter() - start < limit_s:
            status = await stub.GetQueueStatus(
                workspace_pb2.GetQueueStatusRequest(workspace_id=ws), timeout=30)
            open_jobs = status.totals.pending + status.totals.in_progress
            now = time.perf_counter() - start
            if searchable is None and status.embedding.pending == 0:
                searchable = now
            if open_jobs == 0 and searchable is not None:
                processed = now
                break
            await asyncio.sleep(0.5)
    return searchable, processed, open_jobs


def rate(n: int, seconds: float | None) -> str:
    return f"{n / seconds:.0f}" if seconds else "-"


async def main(total: int, wait_s: float) -> None:
    load_before = os.getloadavg()
    ceiling = model_rate(min(total, 2000))
    ws = "bench-searchable"
    with server_process("up") as server:
        start = time.perf_counter()
        acked_s = await write(server.address, ws, total)
        searchable_s, processed_s, open_jobs = await wait_done(server.address, ws, start,
                                                               wait_s)
        rss = server.rss_mb()
    load_after = os.getloadavg()
    rows = [
        {"stage": "acknowledged (CreateMessages, 1 client)", "seconds": round(acked_s, 1),
         "msg_per_s": rate(total, acked_s), "ceiling": ""},
        {"stage": "vector-searchable (embedding backlog empty)",
         "seconds": round(searchable_s, 1) if searchable_s else f"> {wait_s:.0f}",
         "msg_per_s": rate(total, searchable_s), "ceiling": f"model alone {ceiling:.0f}/s"},
        {"stage": "fully processed (derivation queue empty too)",
         "seconds": round(processed_s, 1) if processed_s else f"> {wait_s:.0f}",
         "msg_per_s": rate(total, processed_s),
         "ceiling": "" if processed_s else f"{open_jobs} jobs still open"},
    ]
    print_table(f"{total} messages through `honcho-grpc up` (load average before "
                f"{load_before[0]:.1f}, after {load_after[0]:.1f}; server RSS {rss:.0f} MB)",
                rows)
    if searchable_s:
        print(f"time to searchable reaches {total / searchable_s / ceiling:.0%} of the model's "
              "own rate")
    write_json("searchable", {"messages": total, "rows": rows, "model_per_s": round(ceiling),
                              "load_before": load_before[0], "load_after": load_after[0],
                              "open_jobs": open_jobs})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--wait", type=float, default=600.0,
                        help="seconds to wait for the backlog and the queue")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.wait))
