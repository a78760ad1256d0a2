"""Ingest, with the system run as users run it (`honcho-grpc up`: the server with its
embedder, the worker with the configured provider, `local` by default).

For each face (gRPC, HTTP) and each client count (1, 4), N messages are written with
CreateMessages in batches of 100 into a fresh workspace. Three rates per run, from the start
of the writes:
- acknowledged: until the last CreateMessages answered (stored, its work enqueued);
- vector-searchable: until GetQueueStatus shows the workspace's embedding backlog empty;
- fully processed: until its derivation jobs are done too.
Each run waits for the one before to be fully processed, so it starts on a quiet system.
One ImportMessages stream (gRPC) is measured the same way.

The ceilings, measured in the same run: a raw asyncpg COPY of the same rows into the
messages table (no validation, membership, backlog or queue) for acknowledgement; the offline
model's own texts/s (same texts, same batch size as the backlog, before the server starts)
for searchable.

    .venv/bin/python -m bench.ingest [--messages 10000] [--face grpc http] [--wait 900]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc

from bench import cpu
from bench.common import ServerProcess, print_table, server_process, write_json
from bench.faces import FACES, Done, Draft, open_face, wait_done

SENTENCES = [
    "I moved to Lisbon last spring and I love the light in the evenings.",
    "My sister works as a veterinarian and has three cats.",
    "We should plan the hiking trip for the second week of October.",
    "Honestly the new job is stressful but the team is great.",
    "I've been learning to play the cello for about two years now.",
]
BATCH = 100
CLIENTS = (1, 4)


def text(i: int) -> str:
    return f"{SENTENCES[i % len(SENTENCES)]} (note {i})"


def drafts(start: int) -> list[Draft]:
    return [(f"p{i % 4}", text(i)) for i in range(start, start + BATCH)]


def model_rate(n: int, batch: int = 64) -> float:
    """Texts a second the offline model embeds here, alone (the searchable ceiling)."""
    from honcho_grpc.domain.embedding import embedding_text
    from honcho_grpc.providers.embeddings import LocalEmbedder

    embedder = LocalEmbedder()
    texts = [embedding_text(f"p{i % 4}", text(i)) for i in range(n)]
    embedder.embed_sync(texts[:batch])  # load and warm up
    start = time.perf_counter()
    for i in range(0, n, batch):
        embedder.embed_sync(texts[i:i + batch])
    return n / (time.perf_counter() - start)


async def create_messages(server: ServerProcess, face_name: str, ws: str, total: int,
                          clients: int) -> float:
    """Seconds to have `total` messages acknowledged by `clients` concurrent clients (each
    its own connection), after one untimed warm-up batch."""
    faces = [open_face(face_name, server) for _ in range(clients)]
    try:
        await faces[0].create(ws, "warm-up", drafts(total))
        batches: asyncio.Queue[int] = asyncio.Queue()
        for b in range(total // BATCH):
            batches.put_nowait(b)

        async def client(i: int) -> None:
            while not batches.empty():
                b = batches.get_nowait()
                await faces[i].create(ws, f"s{b % 8}", drafts(b * BATCH))

        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return time.perf_counter() - start
    finally:
        for face in faces:
            await face.aclose()


async def import_messages(address: str, ws: str, total: int) -> float:
    size = 1000 if total % 1000 == 0 else BATCH  # chunks of 1000 when they divide it

    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        for c in range(total // size):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=ws, session_id=f"s{c % 8}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % 4}", content=text(i))
                          for i in range(c * size, c * size + size)])

    async with grpc.aio.insecure_channel(address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        start = time.perf_counter()
        await stub.ImportMessages(chunks(), timeout=600)
        return time.perf_counter() - start


async def raw_copy(dsn: str, total: int, ws: str) -> float:
    """The acknowledgement ceiling: the same rows COPied straight into the messages table
    (token counts included: ours count them too)."""
    from honcho_grpc.providers.tokens import count_tokens_batch

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspaces (workspace_id) VALUES ($1)", ws)
        await conn.execute("INSERT INTO sessions (workspace_id, session_id) VALUES ($1, 's')", ws)
        await conn.executemany("INSERT INTO peers (workspace_id, peer_id) VALUES ($1, $2)",
                               [(ws, f"p{i}") for i in range(4)])
        texts = [text(i) for i in range(total)]
        start = time.perf_counter()
        tokens = count_tokens_batch(texts)
        records = [(ws, uuid.uuid4().hex[:21], "s", f"p{i % 4}", i + 1, t, "{}", "{}", "{}", n)
                   for i, (t, n) in enumerate(zip(texts, tokens, strict=True))]
        await conn.copy_records_to_table(
            "messages", records=records,
            columns=["workspace_id", "message_id", "session_id", "peer_id", "seq", "content",
                     "metadata", "configuration", "internal_metadata", "token_count"])
        return time.perf_counter() - start
    finally:
        await conn.close()


def rate(n: int, seconds: float | None) -> int | None:
    return round(n / seconds) if seconds else None


def measured(name: str, total: int, acked_s: float, done: Done,
             cpu_marks: tuple[dict[str, float], ...]) -> dict[str, Any]:
    """cpu_marks: CPU snapshots at the start, at acknowledgement and when done."""
    return {"run": name, "messages": total, "ack_s": round(acked_s, 2),
            "ack_per_s": rate(total, acked_s),
            "searchable_s": done.searchable_s and round(done.searchable_s, 1),
            "searchable_per_s": rate(total, done.searchable_s),
            "processed_s": done.processed_s and round(done.processed_s, 1),
            "processed_per_s": rate(total, done.processed_s),
            "left_embedding": done.embedding_pending, "left_jobs": done.open_jobs,
            "cpu_s_per_1k_ack": cpu.per_thousand(cpu_marks[0], cpu_marks[1], total),
            "cpu_s_per_1k": cpu.per_thousand(cpu_marks[0], cpu_marks[2], total)}


async def run_all(server: ServerProcess, faces: list[str], total: int, wait_s: float,
                  with_import: bool) -> list[dict[str, Any]]:
    runs = []
    for face in faces:
        for clients in CLIENTS:
            ws = f"bench-{face}-{clients}c"
            before = cpu.snapshot(server.proc.pid)
            start = time.perf_counter()
            acked = await create_messages(server, face, ws, total, clients)
            at_ack = cpu.snapshot(server.proc.pid)
            done = await wait_done(server.address, ws, start, wait_s)
            runs.append(measured(f"{face}, {clients} client{'s' * (clients > 1)}", total,
                                 acked, done, (before, at_ack, cpu.snapshot(server.proc.pid))))
    if with_import:
        before = cpu.snapshot(server.proc.pid)
        start = time.perf_counter()
        acked = await import_messages(server.address, "bench-import", total)
        at_ack = cpu.snapshot(server.proc.pid)
        done = await wait_done(server.address, "bench-import", start, wait_s)
        runs.append(measured("grpc, ImportMessages stream", total, acked, done,
                             (before, at_ack, cpu.snapshot(server.proc.pid))))
    return runs


def cell(value: int | None, limit: float) -> str:
    return f"{value:,}" if value else f"not in {limit:.0f} s"


def print_runs(runs: list[dict[str, Any]], copy_rate: float, model: float, wait_s: float,
               title: str) -> None:
    rows = [{"run": r["run"], "ack msg/s": cell(r["ack_per_s"], wait_s),
             "searchable msg/s": cell(r["searchable_per_s"], wait_s),
             "processed msg/s": cell(r["processed_per_s"], wait_s),
             "left (embedding, jobs)": f"{r['left_embedding']}, {r['left_jobs']}",
             "CPU-s/1k msgs (server, worker, pg) ack; all": "; ".join(
                 ", ".join(f"{r[key][role]:.1f}" for role in cpu.ROLES)
                 for key in ("cpu_s_per_1k_ack", "cpu_s_per_1k"))}
            for r in runs]
    rows.append({"run": "ceiling (same run)", "ack msg/s": f"{copy_rate:,.0f} raw COPY",
                 "searchable msg/s": f"{model:,.0f} model alone", "processed msg/s": "",
                 "left (embedding, jobs)": "",
                 "CPU-s/1k msgs (server, worker, pg) ack; all": ""})
    print_table(title, rows)


async def main(total: int, faces: list[str], wait_s: float, repeat: int,
               with_import: bool, name: str = "ingest") -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    model = model_rate(min(total, 2000))
    with server_process("up") as server:
        copies = [await raw_copy(server.dsn(), total, f"bench-copy-{r}") for r in range(repeat)]
        copy_rate = total / statistics.median(copies)
        runs = await run_all(server, faces, total, wait_s, with_import)
        rss = server.rss_mb()
    load_after = os.getloadavg()[0]
    print_runs(runs, copy_rate, model, wait_s,
               f"{total:,} messages per run through `honcho-grpc up` (worker on; load average "
               f"{load_before:.1f} before, {load_after:.1f} after; server RSS {rss:.0f} MB)")
    result = {"messages": total, "runs": runs, "copy_per_s": round(copy_rate),
              "copy_s": [round(c, 3) for c in copies], "model_per_s": round(model),
              "command": "up", "load_before": load_before, "load_after": load_after,
              "server_rss_mb": round(rss)}
    write_json(name, result)
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--face", nargs="+", choices=FACES, default=list(FACES),
                   help="the faces to drive (both by default, printed side by side)")
    p.add_argument("--wait", type=float, default=900.0,
                   help="seconds each run may take to be fully processed")
    p.add_argument("--repeat", type=int, default=3, help="raw COPY runs (their median)")
    p.add_argument("--no-import", action="store_true", help="skip the ImportMessages run")
    p.add_argument("--name", default="ingest", help="results file name")
    return p


if __name__ == "__main__":
    args = parser().parse_args()
    if args.messages % BATCH:
        parser().error(f"--messages must be a multiple of {BATCH}")
    asyncio.run(main(args.messages, args.face, args.wait, args.repeat, not args.no_import,
                     args.name))
