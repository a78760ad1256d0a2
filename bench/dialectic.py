"""Prompt-time calls: GetContext and GetRepresentation p50/p95 at 10k and 100k messages in
one session, and StreamChat time to first delta with the offline local provider.

StreamChat first-delta overhead (`overhead`): the server talks to a local OpenAI-compatible
server (tests/fakes/openai_server.py, the tests' fake) that answers after a fixed first-token
delay; the overhead is the client's time to the first delta minus that delay: gathering the
context, the provider call through the official SDK, and gRPC. The data are the LoCoMo dev
conversations (real turns with random stored vectors; questions embedded by the real model),
one speaker asking about the other, a different question each call. `minimal` streams the
provider's answer; `low` makes one tool round (a streamed call offering the tools) that the
fake answers without asking for a tool, so that round's stream is the answer.
Target: <= 20 ms.

    .venv/bin/python -m bench.dialectic [--sizes 10000 100000] [--calls 200]
    .venv/bin/python -m bench.dialectic --only overhead [--delay-ms 50] [--overhead-calls 150]

Results are merged into bench/results/dialectic.json (keys not measured are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from honcho_grpc_proto.v1 import (
    dialectic_pb2,
    dialectic_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

from bench.common import percentiles, print_table, server_process, write_json
from bench.ingest import text
from bench.locomo_retrieval import DATA as LOCOMO
from bench.locomo_retrieval import ingest, peer_id, questions
from bench.search import settle, synthetic_vectors
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Reply

WS, SESSION = "bench-dialectic", "long-session"
WARM_UP = 20  # calls per level not counted: connections, caches, the embedder


async def load(address: str, dsn: str, total: int) -> None:
    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        for c in range(total // 1000):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=WS, session_id=SESSION,
                messages=[message_pb2.MessageInput(peer_id=f"p{i % 2}", content=text(i))
                          for i in range(c * 1000, c * 1000 + 1000)])

    async with grpc.aio.insecure_channel(address) as channel:
        await message_pb2_grpc.MessageServiceStub(channel).ImportMessages(chunks(), timeout=900)
    # The steady state of a drained backlog, without the minutes of real embedding: vectors,
    # corpus statistics, and the ANALYZE autovacuum would run within a minute of the load
    # (without it the planner picks plans for an empty table).
    await synthetic_vectors(dsn)
    # What the worker would have derived: conclusions and a summary (written directly, so the
    # benchmark measures reads, not derivation).
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
            "session_id, content, times_derived) SELECT $1, 'c' || g, 'p0', 'p0', $2, "
            "'p0 fact number ' || g, 1 + g % 5 FROM generate_series(1, 500) g", WS, SESSION)
        await conn.execute(
            "INSERT INTO summaries (workspace_id, session_id, summary_type, content, "
            "last_message_id, last_message_seq, token_count) SELECT $1, $2, 'short', "
            "repeat('summary ', 300), message_id, seq, 300 FROM messages WHERE "
            "workspace_id = $1 AND session_id = $2 ORDER BY seq DESC OFFSET 40 LIMIT 1",
            WS, SESSION)
    finally:
        await conn.close()
    await settle(dsn)


async def timed(n: int, call) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(address: str, calls: int) -> list[dict[str, object]]:
    async with grpc.aio.insecure_channel(address) as channel:
        sessions = session_pb2_grpc.SessionServiceStub(channel)
        peers = peer_pb2_grpc.PeerServiceStub(channel)
        dialectic = dialectic_pb2_grpc.DialecticServiceStub(channel)

        async def context() -> None:
            await sessions.GetContext(session_pb2.GetContextRequest(
                workspace_id=WS, session_id=SESSION, tokens=4000), timeout=10)

        async def context_with_peer() -> None:
            await sessions.GetContext(session_pb2.GetContextRequest(
                workspace_id=WS, session_id=SESSION, tokens=4000, peer_target="p0"),
                timeout=10)

        async def representation() -> None:
            await peers.GetRepresentation(peer_pb2.GetRepresentationRequest(
                workspace_id=WS, peer_id="p0", include_most_frequent=True), timeout=10)

        async def first_delta() -> None:
            stream = dialectic.StreamChat(dialectic_pb2.StreamChatRequest(
                query=dialectic_pb2.ChatQuery(workspace_id=WS, peer_id="p0",
                                              query="what instrument is p0 learning?")))
            await stream.read()
            stream.cancel()

        rows: list[dict[str, object]] = []
        for name, fn in (("GetContext (4k tokens)", context),
                         ("GetContext + peer representation", context_with_peer),
                         ("GetRepresentation", representation),
                         ("StreamChat first delta (local provider)", first_delta)):
            await timed(10, fn)
            rows.append({"call": name, **percentiles(await timed(calls, fn))})
    return rows


@dataclass
class Asked:
    workspace_id: str
    observer: str
    target: str
    question: str


def locomo_questions(data: list[dict[str, Any]]) -> list[Asked]:
    """Every LoCoMo question (categories 1-4), asked by one speaker about the other."""
    return [Asked(f"locomo-{sample['sample_id']}",
                  peer_id(sample["conversation"]["speaker_a"]),
                  peer_id(sample["conversation"]["speaker_b"]), q["question"])
            for sample in data for q in questions(sample)]


async def time_to_first_delta(dialectic: dialectic_pb2_grpc.DialecticServiceStub,
                              asked: Asked, level: int) -> float:
    start = time.perf_counter()
    stream = dialectic.StreamChat(dialectic_pb2.StreamChatRequest(
        query=dialectic_pb2.ChatQuery(  # type: ignore[arg-type]
            workspace_id=asked.workspace_id, peer_id=asked.observer, target_id=asked.target,
            query=asked.question, reasoning_level=level)), timeout=10)
    first = await stream.read()
    elapsed = (time.perf_counter() - start) * 1000
    stream.cancel()
    assert first.HasField("delta"), first
    return elapsed


async def overhead(calls: int, delay_ms: float) -> tuple[list[dict[str, object]], int]:
    """First-delta overhead on real conversations (LoCoMo: both dev conversations), each
    call a different question, cycling. Stored vectors are random (embedding every turn takes
    ~40 s on this machine; the vector arm's cost does not depend on the values); questions
    are embedded by the server's real model."""
    data = json.loads(await asyncio.to_thread(Path(LOCOMO).read_text))
    asked = locomo_questions(data)
    levels = (("minimal: provider stream", dialectic_pb2.REASONING_LEVEL_MINIMAL),
              ("low: one tool round, no tool asked", dialectic_pb2.REASONING_LEVEL_LOW))
    samples: dict[str, list[float]] = {label: [] for label, _ in levels}
    provider = FakeOpenAI()
    # Tools offered are never asked for: the `low` tool round ends at once, its stream the
    # answer. The fake serves from its own thread, so its work stays off this loop's timing.
    provider.default = Reply("p0 is learning cello.", first_token_delay=delay_ms / 1000)
    with provider.in_thread() as fake, server_process(
            SERVER_EMBED_IN_SERVER="false", LLM_PROVIDER="openai", LLM_MODEL="bench-model",
            LLM_OPENAI_BASE_URL=fake.url, LLM_MAX_RETRIES="0") as server:
        ready = time.perf_counter()
        await ingest(server.address, data)
        await synthetic_vectors(server.dsn())
        messages = await message_count(server.dsn())
        print(f"{messages} messages imported and given vectors in "
              f"{time.perf_counter() - ready:.1f} s", flush=True)
        async with grpc.aio.insecure_channel(server.address) as channel:
            dialectic = dialectic_pb2_grpc.DialecticServiceStub(channel)
            for i in range(WARM_UP + calls):
                # Levels alternate, so both see the same (shared) machine.
                for label, level in levels:
                    elapsed = await time_to_first_delta(dialectic, asked[i % len(asked)], level)
                    if i >= WARM_UP:
                        samples[label].append(elapsed - delay_ms)
    rows: list[dict[str, object]] = [
        {"level": label, "provider_first_token_ms": delay_ms, **percentiles(samples[label])}
        for label, _ in levels]
    return rows, messages


async def message_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


def load_average() -> str:
    """The 1/5/15-minute load averages: the machine is shared, so figures need context."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def main(sizes: list[int], calls: int, only: str, delay_ms: float,
               overhead_calls: int) -> None:
    results: dict[str, object] = {}
    if only in ("all", "prompt"):
        for size in sizes:
            with server_process(SERVER_EMBED_IN_SERVER="false") as server:
                await load(server.address, server.dsn(), size)
                rows = await measure(server.address, calls)
            for r in rows:
                r["messages"] = size
            print_table(f"{size} messages in one session", rows)
            results[str(size)] = rows
    if only in ("all", "overhead"):
        before = load_average()
        started = time.perf_counter()
        rows, messages = await overhead(overhead_calls, delay_ms)
        took = time.perf_counter() - started
        after = load_average()
        print_table(f"StreamChat first-delta overhead beyond the provider's first token, "
                    f"LoCoMo, {messages} messages (target <= 20 ms; load average {before} -> "
                    f"{after}; {took:.0f} s)", rows)
        results["stream_chat_overhead"] = {"rows": rows, "target_ms": 20, "corpus": "locomo",
                                           "messages": messages,
                                           "load_average": [before, after]}
    write_json("dialectic", results, merge=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--only", choices=["all", "prompt", "overhead"], default="all")
    parser.add_argument("--delay-ms", type=float, default=50.0,
                        help="the fake provider's time to first token")
    parser.add_argument("--overhead-calls", type=int, default=150, help="per level")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.calls, args.only, args.delay_ms, args.overhead_calls))
