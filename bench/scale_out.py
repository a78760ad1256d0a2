"""Scale-out on one machine: two `honcho-grpc serve` processes and two `honcho-grpc worker`
processes against one PostgreSQL, under load; then proof that nothing was lost and nothing
processed twice.

- Load (`--seconds`, default 30): `--clients` concurrent clients (default 8), half on each
  server, each writing CreateMessages of `--batch` (10) first-person facts, each one unique,
  then one read (SearchMessages, GetContext or a ListMessages page, in turn). The workers
  derive conclusions and summaries meanwhile; the servers share the embedding backlog.
- Drain: after the load, until no queue row is open and the embedding backlog is empty.
- Checks (the run fails if one does not hold): every acknowledged message is stored once,
  with gap-free sequences per session, embedded, and has exactly one representation job;
  every queue row completed at its first attempt (none failed, retried or taken over from
  another worker); every fact derived exactly once by each of its observers, counted as the
  explicit conclusions' `times_derived` (a fact that says what an earlier one said, which
  the real embedding model finds often among these templated facts, reinforces that
  conclusion instead of adding one), so a batch lost or run twice would show; both servers
  served and both workers worked.

    .venv/bin/python -m bench.scale_out [--seconds 30] [--clients 8] [--embedding local]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from honcho_grpc_proto.v1 import (
    message_pb2,
    message_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

from bench.common import ROOT, free_port, percentiles, print_table, wait_healthy, write_json
from bench.queue import fact
from honcho_grpc.db.embedded import EmbeddedPostgres

READS = ("SearchMessages", "GetContext", "ListMessages")


@contextmanager
def postgres() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="honcho-scale-"))
    root.chmod(0o755)
    pg = EmbeddedPostgres(root / "data")  # fsync on, as in production
    try:
        yield pg.start()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def processes(command: str, count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` processes of `honcho-grpc <command>`; servers yield their addresses once
    healthy, workers their ids once running."""
    procs, names = [], []
    try:
        for _ in range(count):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "honcho_grpc.cli", command], cwd=ROOT,
                env={**env, "SERVER_PORT": str(port)}, stdout=subprocess.PIPE)
            procs.append(proc)
            if command == "serve":
                wait_healthy(f"127.0.0.1:{port}", proc, timeout=120)
                names.append(f"127.0.0.1:{port}")
            else:
                assert proc.stdout is not None
                names.append(proc.stdout.readline().decode().split()[2])  # "... worker ID running"
        yield names
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


@dataclass
class Load:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    per_server: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    acknowledged: set[str] = field(default_factory=set)  # message ids the servers returned
    sessions: set[str] = field(default_factory=set)


async def client(n: int, address: str, ws: str, batch: int, until: float, load: Load,
                 numbers: Iterator[int]) -> None:
    session = f"s{n}"
    load.sessions.add(session)
    peers = (f"p{n}a", f"p{n}b")
    async with grpc.aio.insecure_channel(address) as channel:
        messages = message_pb2_grpc.MessageServiceStub(channel)
        search = search_pb2_grpc.SearchServiceStub(channel)
        sessions = session_pb2_grpc.SessionServiceStub(channel)
        reads = itertools.cycle(READS)
        for turn in itertools.count():
            if time.monotonic() >= until:
                return
            request = message_pb2.CreateMessagesRequest(workspace_id=ws, session_id=session,
                                                        messages=[
                message_pb2.MessageInput(peer_id=peers[(turn + i) % 2], content=fact(next(numbers)))
                for i in range(batch)])
            answer = await timed(load, address, "CreateMessages",
                                 messages.CreateMessages(request, timeout=60))
            if answer is not None:
                load.acknowledged.update(m.id for m in answer.messages)
            kind = next(reads)
            call: Any
            if kind == "SearchMessages":
                call = search.SearchMessages(search_pb2.SearchMessagesRequest(
                    workspace_id=ws, query=f"what does {peers[0]} play?", limit=10), timeout=60)
            elif kind == "GetContext":
                call = sessions.GetContext(session_pb2.GetContextRequest(
                    workspace_id=ws, session_id=session, tokens=2000), timeout=60)
            else:
                call = messages.ListMessages(message_pb2.ListMessagesRequest(
                    workspace_id=ws, session_id=session, page_size=50, reverse=True),
                    timeout=60)
            await timed(load, address, kind, call)


async def timed(load: Load, address: str, kind: str, call: Any) -> Any:
    started = time.perf_counter()
    try:
        answer = await call
    except grpc.aio.AioRpcError as exc:
        load.errors[f"{kind} {exc.code().name}"] += 1
        return None
    load.latencies[kind].append((time.perf_counter() - started) * 1000)
    load.per_server[address] += 1
    return answer


async def drain(pool: asyncpg.Pool, ws: str, limit: float) -> float:
    started = time.monotonic()
    while True:
        # Card refreshes aside: one may be scheduled minutes ahead (PEER_CARD_REFRESH_SECONDS).
        open_rows = await pool.fetchval(
            "SELECT count(*) FROM queue WHERE workspace_id = $1 "
            "AND status IN ('pending', 'in_progress') AND task_type <> 'card'", ws)
        backlog = await pool.fetchval(
            "SELECT count(*) FROM embedding_backlog WHERE workspace_id = $1", ws)
        if open_rows == 0 and backlog == 0:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise TimeoutError(f"not drained after {limit:.0f} s: {open_rows} queue rows open, "
                               f"{backlog} messages not embedded")
        await asyncio.sleep(0.25)


async def audit(pool: asyncpg.Pool, ws: str, load: Load, workers: list[str]) -> dict[str, Any]:
    """Every check of the docstring; the counts behind them."""
    stored = {r["message_id"]: r for r in await pool.fetch(
        "SELECT message_id, session_id, seq FROM messages WHERE workspace_id = $1", ws)}
    gaps = await pool.fetchval(
        "SELECT count(*) FROM (SELECT session_id, count(*) AS n, max(seq) AS top, "
        "count(DISTINCT seq) AS distinct_seq FROM messages WHERE workspace_id = $1 "
        "GROUP BY session_id) s WHERE n <> top OR n <> distinct_seq", ws)
    embedded = await pool.fetchval(
        "SELECT count(*) FROM message_embeddings WHERE workspace_id = $1", ws)
    jobs = await pool.fetch(
        "SELECT payload ->> 'message_id' AS message_id, count(*) AS n FROM queue "
        "WHERE workspace_id = $1 AND task_type = 'representation' GROUP BY 1", ws)
    # A card refresh scheduled ahead (PEER_CARD_REFRESH_SECONDS) has not run yet, by design.
    ran = ("workspace_id = $1 AND NOT (task_type = 'card' AND status = 'pending' "
           "AND attempts = 0)")
    rows = await pool.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'completed') AS completed, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "count(*) FILTER (WHERE attempts <> 1) AS not_once, "
        "count(DISTINCT claimed_by) AS workers, "
        "min(created_at) AS first, max(completed_at) AS last "
        f"FROM queue WHERE {ran}", ws)
    by_worker = {r["claimed_by"]: r["n"] for r in await pool.fetch(
        f"SELECT claimed_by, count(*) AS n FROM queue WHERE {ran} GROUP BY 1", ws)}
    by_type = {r["task_type"]: r["n"] for r in await pool.fetch(
        "SELECT task_type, count(*) AS n FROM queue WHERE workspace_id = $1 GROUP BY 1", ws)}
    conclusions = await pool.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE level = 'explicit') AS explicit, "
        "coalesce(sum(times_derived) FILTER (WHERE level = 'explicit'), 0) AS derivations "
        "FROM conclusions WHERE workspace_id = $1", ws)
    # Each message states one fact, which each of its observers derives once: as a new
    # conclusion, or as one more `times_derived` of a conclusion that says the same.
    expected_derivations = await pool.fetchval(
        "SELECT coalesce(sum(jsonb_array_length(payload -> 'observers')), 0) FROM queue "
        "WHERE workspace_id = $1 AND task_type = 'representation'", ws)
    job_counts = {r["message_id"]: r["n"] for r in jobs}
    checks = {
        "every acknowledged message stored": load.acknowledged == set(stored),
        "sequences gap-free in every session": gaps == 0,
        "every message embedded": embedded == len(stored),
        "one representation job per message": job_counts == dict.fromkeys(stored, 1),
        "every queue row completed": rows["completed"] == rows["total"] > 0,
        "every queue row run once (no retry, no takeover)": rows["not_once"] == 0,
        "every fact derived once per observer": conclusions["derivations"]
        == expected_derivations,
        "both workers worked": set(by_worker) == set(workers),
        "both servers served": len(load.per_server) == 2,
        "no failed call": not load.errors,
    }
    return {"checks": checks, "messages": len(stored), "queue_rows": rows["total"],
            "queue_rows_by_type": by_type, "failed_rows": rows["failed"],
            "rows_by_worker": by_worker, "conclusions": conclusions["total"],
            "explicit_conclusions": conclusions["explicit"],
            "derivations": conclusions["derivations"],
            "expected_derivations": expected_derivations,
            "queue_span_s": (rows["last"] - rows["first"]).total_seconds(),
            "errors": dict(load.errors)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ws = f"scale-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        dsn = stack.enter_context(postgres())
        env = {**os.environ, "DB_CONNECTION_URI": dsn, "APP_LOG_LEVEL": "WARNING",
               "EMBEDDING_PROVIDER": args.embedding, "SERVER_HOST": "127.0.0.1",
               "HTTP_PORT": "0"}
        env.pop("QUEUE_HEALTH_PORT", None)
        servers = stack.enter_context(processes("serve", 2, env))
        workers = stack.enter_context(processes("worker", 2, env))
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            load = Load()
            numbers = itertools.count()
            started = time.monotonic()
            await asyncio.gather(*(
                client(n, servers[n % 2], ws, args.batch, started + args.seconds, load,
                       numbers) for n in range(args.clients)))
            loaded = time.monotonic() - started
            drained = await drain(pool, ws, args.drain_limit)
            audited = await audit(pool, ws, load, workers)
        finally:
            await pool.close()
    written = len(load.acknowledged)
    total_calls = sum(len(v) for v in load.latencies.values())
    calls = [{"call": kind, "calls": len(samples), "calls_per_s": round(len(samples) / loaded, 1),
              **{k: v for k, v in percentiles(samples).items() if k != "n"}}
             for kind, samples in load.latencies.items() if len(samples) > 1]
    summary = {
        "servers": 2, "workers": 2, "clients": args.clients, "seconds": round(loaded, 1),
        "calls_per_s": round(total_calls / loaded, 1),
        "messages_written_per_s": round(written / loaded, 1),
        "drain_after_load_s": round(drained, 1),
        "messages_derived_per_s": round(written / (loaded + drained), 1),
        "calls_by_server": dict(load.per_server),
    }
    return {"embedding": args.embedding, "batch": args.batch, "summary": summary,
            "calls": calls, "audit": audited}


def report(result: dict[str, Any]) -> bool:
    s, a = result["summary"], result["audit"]
    print_table("scale-out: 2 servers, 2 workers, one PostgreSQL", [{
        "clients": s["clients"], "seconds": s["seconds"], "calls/s": s["calls_per_s"],
        "messages written/s": s["messages_written_per_s"],
        "drained after load (s)": s["drain_after_load_s"],
        "messages derived/s": s["messages_derived_per_s"]}])
    print_table("calls (both servers)", result["calls"])
    print_table("where the work went", [
        {"process": name, "share": n} for name, n in
        [*s["calls_by_server"].items(), *a["rows_by_worker"].items()]])
    print_table("checks", [{"check": k, "holds": v} for k, v in a["checks"].items()])
    print(f"\n{a['messages']} messages, {a['queue_rows']} queue rows {a['queue_rows_by_type']}, "
          f"{a['conclusions']} conclusions ({a['explicit_conclusions']} explicit, derived "
          f"{a['derivations']} times; expected {a['expected_derivations']})")
    return all(a["checks"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10, help="messages per CreateMessages")
    parser.add_argument("--drain-limit", type=float, default=300)
    parser.add_argument("--embedding", default="local", choices=["local", "fake"],
                        help="embedder of servers and workers (default: the offline model)")
    parser.add_argument("--name", default="scale_out",
                        help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    ok = report(result)
    write_json(args.name, result)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
