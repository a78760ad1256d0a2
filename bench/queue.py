"""The background queue: end-to-end lag, throughput with one and two workers, and the queue's
own cost per task.

- lag: one message at a time into an idle queue; time from sending CreateMessages to the
  `conclusions.derived` event for it (sent by the worker when its transaction commits, so
  the conclusions are visible to every reader at that moment). Offline `local` model.
- throughput: a backlog of representation work (every message states a fact) built with no
  worker running, then drained by 1 and by 2 worker processes; messages/s and batches/s.
- overhead: `noop` tasks, each in its own work unit (claim, lease, mark, complete, release;
  no handler work), drained by one worker: milliseconds per task.

    .venv/bin/python -m bench.queue [--lag-samples 200] [--backlog 3000] [--noop 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import grpc
from honcho_grpc_proto.v1 import event_pb2, event_pb2_grpc, message_pb2, message_pb2_grpc

from bench.common import ROOT, ServerProcess, percentiles, print_table, server_process, write_json

FACTS = ["I play the {} on weekends.", "My favourite city is {}.", "I work with {} every day.",
         "I am learning {} this year.", "I collect {} from flea markets."]
THINGS = ["cello", "Lisbon", "databases", "Portuguese", "old maps", "tea", "kites", "jazz"]


def fact(i: int) -> str:
    return FACTS[i % len(FACTS)].format(f"{THINGS[i % len(THINGS)]} #{i}")


@contextmanager
def workers(dsn: str, count: int, **env: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    environ = {**os.environ, "DB_CONNECTION_URI": dsn, "APP_LOG_LEVEL": "WARNING", **env}
    procs = [subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "worker"],
                              env=environ, cwd=ROOT, stdout=subprocess.PIPE)
             for _ in range(count)]
    try:
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()  # "honcho-grpc worker ... running"
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


async def lag(server: ServerProcess, samples: int) -> dict[str, Any]:
    """Sequential single messages into an idle queue, one worker."""
    ws = f"lag-{uuid.uuid4().hex[:8]}"
    out: list[float] = []
    async with grpc.aio.insecure_channel(server.address) as channel:
        messages = message_pb2_grpc.MessageServiceStub(channel)
        events = event_pb2_grpc.EventServiceStub(channel)
        await messages.CreateMessages(message_pb2.CreateMessagesRequest(  # creates ws
            workspace_id=ws, session_id="warm", messages=[
                message_pb2.MessageInput(peer_id="ann", content=fact(0))]))
        with workers(server.dsn(), 1):
            call = events.WatchEvents(event_pb2.WatchEventsRequest(
                workspace_id=ws, types=[event_pb2.EVENT_TYPE_CONCLUSIONS_DERIVED]))
            await call.initial_metadata()
            stream = call.__aiter__()
            await stream.__anext__()  # the warm-up message's conclusion
            for i in range(1, samples + 1):
                started = time.perf_counter()
                await messages.CreateMessages(message_pb2.CreateMessagesRequest(
                    workspace_id=ws, session_id="s", messages=[
                        message_pb2.MessageInput(peer_id="ann", content=fact(i))]))
                await asyncio.wait_for(stream.__anext__(), 30)
                out.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.05)  # let the queue go idle again
            call.cancel()
    return percentiles(out)


async def fill(server: ServerProcess, ws: str, total: int, sessions: int = 20) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        for b in range(total // 100):
            await stub.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=f"s{b % sessions}", messages=[
                    message_pb2.MessageInput(peer_id=f"p{b % sessions}-{i % 2}",
                                             content=fact(b * 100 + i))
                    for i in range(100)]), timeout=120)


async def drained(pool: asyncpg.Pool, ws: str) -> bool:
    n = await pool.fetchval("SELECT count(*) FROM queue WHERE workspace_id = $1 "
                            "AND status IN ('pending', 'in_progress')", ws)
    return bool(n == 0)


async def drain_time(pool: asyncpg.Pool, dsn: str, ws: str, count: int,
                     limit_s: float = 900) -> float:
    started = time.perf_counter()
    with workers(dsn, count):
        while not await drained(pool, ws):
            if time.perf_counter() - started > limit_s:
                raise TimeoutError("queue not drained")
            await asyncio.sleep(0.05)
        return time.perf_counter() - started


async def throughput(server: ServerProcess, backlog: int, count: int) -> dict[str, Any]:
    ws = f"tp{count}-{uuid.uuid4().hex[:8]}"
    await fill(server, ws, backlog)
    pool = await asyncpg.create_pool(server.dsn(), min_size=1, max_size=2)
    try:
        # Let the server's embedding backlog finish first, so it does not share the CPU.
        while await pool.fetchval("SELECT count(*) FROM embedding_backlog"):
            await asyncio.sleep(0.2)
        seconds = await drain_time(pool, server.dsn(), ws, count)
        row = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE task_type = 'representation') AS messages, "
            "count(DISTINCT (work_unit_key, completed_at)) AS batches, count(*) AS rows, "
            "count(*) FILTER (WHERE status = 'failed') AS failed "
            "FROM queue WHERE workspace_id = $1", ws)
        conclusions = await pool.fetchval(
            "SELECT count(*) FROM conclusions WHERE workspace_id = $1", ws)
    finally:
        await pool.close()
    return {"workers": count, "messages": row["messages"], "queue_rows": row["rows"],
            "batches": row["batches"], "failed": row["failed"], "conclusions": conclusions,
            "seconds": round(seconds, 2),
            "messages_per_s": round(row["messages"] / seconds, 1),
            "batches_per_s": round(row["batches"] / seconds, 1)}


async def overhead(server: ServerProcess, tasks: int) -> dict[str, Any]:
    ws = f"noop-{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(server.dsn(), min_size=1, max_size=2)
    try:
        await pool.execute("INSERT INTO workspaces (workspace_id) VALUES ($1)", ws)
        await pool.execute(
            "INSERT INTO queue (workspace_id, task_type, work_unit_key) "
            "SELECT $1, 'noop', 'noop:' || i FROM generate_series(1, $2) i", ws, tasks)
        seconds = await drain_time(pool, server.dsn(), ws, 1)
    finally:
        await pool.close()
    return {"tasks": tasks, "seconds": round(seconds, 2),
            "tasks_per_s": round(tasks / seconds, 1),
            "ms_per_task": round(seconds * 1000 / tasks, 2)}


async def main(args: argparse.Namespace) -> None:
    with server_process(EMBEDDING_PROVIDER=args.embedding) as server:
        lag_result = await lag(server, args.lag_samples)
        print_table("lag: CreateMessages -> conclusions visible (idle queue, 1 worker)",
                    [lag_result])
        rates = [await throughput(server, args.backlog, n) for n in (1, 2)]
        print_table("throughput: draining a representation backlog", rates)
        cost = await overhead(server, args.noop)
        print_table("queue overhead: no-op tasks, one unit each, 1 worker", [cost])
    write_json("queue", {"embedding": args.embedding, "lag": lag_result,
                         "throughput": rates, "overhead": cost})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lag-samples", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--noop", type=int, default=2000)
    parser.add_argument("--embedding", default="local", choices=["local", "fake"],
                        help="embedder of server and workers (default: the offline model)")
    asyncio.run(main(parser.parse_args()))
