"""Soak: a bounded mixed load on loopback against a real `honcho-grpc serve` process (embedded
PostgreSQL, offline providers: the local embedding model and the local dialectic), through
the generated stubs. `--concurrency` clients each loop over a weighted mix of CreateMessages
batches, ListMessages paging, SearchMessages, GetContext and StreamChat (read to the end) for
`--seconds`, after a warm-up. Reports per call: count, throughput, p50/p99 latency, errors by
status code; and memory: the server's RSS and its PostgreSQL's (PSS summed over its
processes, so shared buffers count once) at start and end, peak, growth, and the slope over
the second half of the run (a leak keeps climbing; warm-up growth levels off).

    .venv/bin/python -m bench.soak [--seconds 60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from honcho_grpc_proto.v1 import (
    dialectic_pb2,
    dialectic_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

from bench.common import percentiles, print_table, server_process, write_json
from bench.ingest import text
from bench.search import QUERIES, wait_backlog

WS = "soak"
SESSIONS = 8
PEERS = 4
CREATE_BATCH = 20
PAGE_SIZE = 50
# Relative weights: reads dominate, as for an agent that writes each turn and reads around it.
MIX = {"CreateMessages": 4, "ListMessages": 3, "SearchMessages": 2, "GetContext": 2,
       "StreamChat": 1}
TIMEOUTS = {"StreamChat": 30.0}
DEFAULT_TIMEOUT = 10.0


# -- memory ------------------------------------------------------------------------------

def _status_kb(pid: int, key: str, name: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found = []
    try:
        kids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    for kid in kids:
        found += [kid, *descendants(kid)]
    return found


@dataclass
class MemorySample:
    t: float
    server_mb: float
    postgres_mb: float


def sample_memory(server_pid: int, started: float) -> MemorySample:
    server = _status_kb(server_pid, "VmRSS:") / 1024
    postgres = sum(_status_kb(p, "Pss:", "smaps_rollup") for p in descendants(server_pid))
    return MemorySample(time.monotonic() - started, round(server, 1), round(postgres / 1024, 1))


def memory_summary(samples: list[MemorySample], attr: str) -> dict[str, float]:
    values = [getattr(s, attr) for s in samples]
    half = samples[len(samples) // 2:]
    slope = 0.0
    if len(half) >= 2:
        fit = statistics.linear_regression([s.t for s in half], [getattr(s, attr) for s in half])
        slope = fit.slope * 60
    return {"start_mb": values[0], "end_mb": values[-1], "peak_mb": max(values),
            "growth_mb": round(values[-1] - values[0], 1),
            "second_half_slope_mb_per_min": round(slope, 2)}


# -- load --------------------------------------------------------------------------------

@dataclass
class Calls:
    """Latencies (ms) of successful calls and error codes, per RPC."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in MIX})
    errors: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in MIX})
    recording: bool = False

    async def time(self, name: str, call: Callable[[], Awaitable[Any]]) -> None:
        start = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as err:
            if self.recording:
                self.errors[name][err.code().name] += 1
            return
        if self.recording:
            self.latencies[name].append((time.perf_counter() - start) * 1000)


class Client:
    """One simulated client: its own random stream, its own ListMessages cursors."""

    def __init__(self, channel: grpc.aio.Channel, number: int, calls: Calls) -> None:
        self.rng = random.Random(number)
        self.number = number
        self.calls = calls
        self.written = 0
        self.cursors: dict[str, str] = {}
        self.messages = message_pb2_grpc.MessageServiceStub(channel)
        self.search = search_pb2_grpc.SearchServiceStub(channel)
        self.sessions = session_pb2_grpc.SessionServiceStub(channel)
        self.dialectic = dialectic_pb2_grpc.DialecticServiceStub(channel)
        self.ops: dict[str, Callable[[float], Awaitable[Any]]] = {
            "CreateMessages": self.create, "ListMessages": self.list_page,
            "SearchMessages": self.search_messages, "GetContext": self.get_context,
            "StreamChat": self.stream_chat}

    def session(self) -> str:
        return f"s{self.rng.randrange(SESSIONS)}"

    async def create(self, within: float) -> None:
        base = 1_000_000 * (self.number + 1) + self.written
        self.written += CREATE_BATCH
        await self.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=WS, session_id=self.session(), messages=[
                message_pb2.MessageInput(peer_id=f"p{i % PEERS}", content=text(base + i))
                for i in range(CREATE_BATCH)]), timeout=within)

    async def list_page(self, within: float) -> None:
        """The next page of this client's walk through a session (from the start again at
        its end)."""
        session = self.session()
        reply = await self.messages.ListMessages(message_pb2.ListMessagesRequest(
            workspace_id=WS, session_id=session, page_size=PAGE_SIZE,
            page_token=self.cursors.get(session, "")), timeout=within)
        self.cursors[session] = reply.next_page_token

    async def search_messages(self, within: float) -> None:
        await self.search.SearchMessages(search_pb2.SearchMessagesRequest(
            workspace_id=WS, query=self.rng.choice(QUERIES), limit=10), timeout=within)

    async def get_context(self, within: float) -> None:
        await self.sessions.GetContext(session_pb2.GetContextRequest(
            workspace_id=WS, session_id=self.session(), tokens=2000), timeout=within)

    async def stream_chat(self, within: float) -> None:
        question = dialectic_pb2.ChatQuery(workspace_id=WS, query=self.rng.choice(QUERIES),
                                           peer_id=f"p{self.rng.randrange(PEERS)}")
        call = self.dialectic.StreamChat(dialectic_pb2.StreamChatRequest(query=question),
                                         timeout=within)
        async for _ in call:
            pass

    async def run(self, until: float) -> None:
        names, weights = list(MIX), list(MIX.values())
        while time.monotonic() < until:
            name = self.rng.choices(names, weights)[0]
            timeout = TIMEOUTS.get(name, DEFAULT_TIMEOUT)
            await self.calls.time(name, partial(self.ops[name], timeout))


async def seed(address: str, dsn: str, total: int, embedding: bool) -> None:
    """`total` messages spread over the sessions, embedded before the run starts if the
    server embeds (the run measures steady state, not the catch-up)."""
    per_session = max(1, total // SESSIONS)

    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        for s in range(SESSIONS):
            first = s * per_session
            yield message_pb2.ImportMessagesRequest(
                workspace_id=WS, session_id=f"s{s}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % PEERS}", content=text(i))
                          for i in range(first, first + per_session)])

    async with grpc.aio.insecure_channel(address) as channel:
        await message_pb2_grpc.MessageServiceStub(channel).ImportMessages(chunks(), timeout=300)
    if embedding:
        await wait_backlog(dsn)


async def soak(address: str, server_pid: int, seconds: float, warmup: float,
               concurrency: int) -> tuple[Calls, list[MemorySample], float]:
    calls = Calls()
    samples: list[MemorySample] = []
    async with grpc.aio.insecure_channel(address) as channel:
        clients = [Client(channel, n, calls) for n in range(concurrency)]
        await asyncio.gather(*(c.run(time.monotonic() + warmup) for c in clients))
        calls.recording = True
        started = time.monotonic()

        async def sampler() -> None:
            while True:
                samples.append(sample_memory(server_pid, started))
                await asyncio.sleep(1.0)

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(c.run(started + seconds) for c in clients))
        elapsed = time.monotonic() - started
        sampling.cancel()
        samples.append(sample_memory(server_pid, started))
    return calls, samples, elapsed


def rows_for(calls: Calls, elapsed: float) -> list[dict[str, Any]]:
    rows = []
    for name in MIX:
        ok = calls.latencies[name]
        stats = percentiles(ok) if len(ok) >= 2 else {"p50_ms": 0.0, "p99_ms": 0.0}
        errors = calls.errors[name]
        rows.append({"call": name, "ok": len(ok), "per_s": round(len(ok) / elapsed, 1),
                     "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"],
                     "errors": ", ".join(f"{k}:{v}" for k, v in errors.items()) or "0"})
    total = sum(len(v) for v in calls.latencies.values())
    failed = sum(sum(c.values()) for c in calls.errors.values())
    rows.append({"call": "all", "ok": total, "per_s": round(total / elapsed, 1), "p50_ms": "",
                 "p99_ms": "", "errors": str(failed)})
    return rows


async def main(seconds: float, warmup: float, concurrency: int, seed_messages: int,
               embed_in_server: bool) -> None:
    env = {"SERVER_EMBED_IN_SERVER": "true" if embed_in_server else "false"}
    load_before = os.getloadavg()
    with server_process(**env) as server:
        await seed(server.address, server.dsn(), seed_messages, embed_in_server)
        calls, samples, elapsed = await soak(server.address, server.proc.pid, seconds, warmup,
                                             concurrency)
    rows = rows_for(calls, elapsed)
    memory = {"server_rss": memory_summary(samples, "server_mb"),
              "postgres_pss": memory_summary(samples, "postgres_mb")}
    print_table(f"Soak: {elapsed:.0f} s, {concurrency} clients, mix {MIX}, "
                f"{os.cpu_count()} cores (shared)", rows)
    print_table("Memory (MB)", [{"process": k, **v} for k, v in memory.items()])
    write_json("soak", {
        "seconds": round(elapsed, 1), "warmup_seconds": warmup, "concurrency": concurrency,
        "seed_messages": seed_messages, "create_batch": CREATE_BATCH, "page_size": PAGE_SIZE,
        "mix": MIX, "embed_in_server": embed_in_server, "rows": rows, "memory": memory,
        "memory_samples": [vars(s) for s in samples],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    })


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed-messages", type=int, default=800)
    parser.add_argument("--no-embed-in-server", dest="embed_in_server", action="store_false",
                        help="leave new messages' embeddings to a worker (none runs here)")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.warmup, args.concurrency, args.seed_messages,
                     args.embed_in_server))
