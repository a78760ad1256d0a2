"""Search latency at ~100 and 10k messages (100k with --large), query embedding included,
with the system run as users run it (`honcho-grpc up`, worker on).

Each size is a workspace of its own in one server, loaded through ImportMessages (20
sessions of 5% of its messages, 4 peers of 25%); the run waits, through GetQueueStatus, until
every workspace is vector-searchable and its derivation done, vacuums and analyses as
autovacuum soon would, then times SearchMessages at workspace, session and peer scope through
each face (gRPC and the Honcho v3 HTTP API), one call at a time, and ListMessages pages.

    .venv/bin/python -m bench.search [--sizes 100 10000] [--large] [--face grpc http]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import grpc
from honcho_grpc_proto.v1 import (
    message_pb2,
    message_pb2_grpc,
    resources_pb2,
    workspace_pb2,
    workspace_pb2_grpc,
)

from bench.common import ServerProcess, percentiles, print_table, server_process, write_json
from bench.faces import FACES, Face, open_face, wait_done
from bench.ingest import text
from honcho_grpc.store import search_stats

QUERIES = ["where did they move last spring", "what instrument is she learning",
           "who works as a veterinarian", "when is the hiking trip", "how is the new job",
           "cats", "cello lessons", "evening light in Lisbon"]
SESSIONS = 20   # each holds 5% of the messages
PEERS = 4       # each wrote 25%
SCOPES = ("workspace", "session", "peer")


def workspace(size: int) -> str:
    return f"bench-{size}"


async def load(address: str, size: int, reasoning: bool) -> None:
    """ImportMessages, in chunks that go round the sessions so that each gets its share."""
    chunk = min(500, max(1, size // SESSIONS))
    ws = workspace(size)

    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        for c in range(size // chunk):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=ws, session_id=f"s{c % SESSIONS}",
                messages=[message_pb2.MessageInput(peer_id=f"p{i % PEERS}", content=text(i))
                          for i in range(c * chunk, c * chunk + chunk)])

    async with grpc.aio.insecure_channel(address) as channel:
        # Derivation off only where asked (the 100k load: the worker would derive for an
        # hour); it is a workspace setting a user can make too.
        await workspace_pb2_grpc.WorkspaceServiceStub(channel).GetOrCreateWorkspace(
            workspace_pb2.GetOrCreateWorkspaceRequest(
                workspace_id=ws, configuration=resources_pb2.Configuration(
                    reasoning=resources_pb2.ReasoningConfiguration(enabled=reasoning))))
        await message_pb2_grpc.MessageServiceStub(channel).ImportMessages(chunks(), timeout=1800)


async def synthetic_vectors(dsn: str, ws: str) -> None:
    """Fill the vector arm of one workspace without the model: random unit vectors written in
    bulk, the HNSW index rebuilt once, its backlog emptied and counted in the search
    statistics as the embedder would have. The query is still embedded by the real model
    inside the server."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP INDEX message_embeddings_hnsw")
        await conn.execute(
            "INSERT INTO message_embeddings (workspace_id, message_id, session_id, peer_id, "
            "model, embedding) SELECT m.workspace_id, m.message_id, m.session_id, m.peer_id, "
            "'synthetic', "
            "l2_normalize((SELECT array_agg(random() - 0.5) FROM generate_series(1, 384) "
            "WHERE m.seq > 0)::halfvec) FROM messages m WHERE m.workspace_id = $1 "
            "ON CONFLICT DO NOTHING", ws)
        await conn.execute("CREATE INDEX message_embeddings_hnsw ON message_embeddings "
                           "USING hnsw (embedding halfvec_cosine_ops)")
        # Out of the backlog and into the search statistics, as the embedder takes them:
        # the vector arm chooses its plan from these counts (a scope counted empty is
        # ranked exactly, whatever its real size).
        async with conn.transaction():
            ids = [r["message_id"] for r in await conn.fetch(
                "DELETE FROM embedding_backlog WHERE workspace_id = $1 RETURNING message_id",
                ws)]
            await search_stats.add_messages(conn, [ws] * len(ids), ids)
    finally:
        await conn.close()


async def settle(dsn: str) -> None:
    """VACUUM ANALYZE now, as autovacuum would soon: steady-state figures, not those of a
    run sharing the cores with autovacuum's first pass over the fresh rows."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def time_calls(n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def scope_size(size: int, scope: str) -> int:
    return {"workspace": size, "session": size // SESSIONS, "peer": size // PEERS}[scope]


async def search_latency(face: Face, size: int, scope: str, queries: int) -> dict[str, float]:
    ws = workspace(size)

    async def call(i: int) -> None:
        query = f"{QUERIES[i % len(QUERIES)]} {i}"  # each query its own: nothing cached
        await face.search(ws, query, session=f"s{i % SESSIONS}" if scope == "session" else "",
                          peer=f"p{i % PEERS}" if scope == "peer" else "")

    await time_calls(10, call)  # warm-up
    return percentiles(await time_calls(queries, call))


async def list_latency(address: str, size: int, queries: int) -> dict[str, float]:
    """ListMessages pages of 50 at random depths of one session (gRPC)."""
    ws = workspace(size)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        tokens = [""]
        page = await stub.ListMessages(message_pb2.ListMessagesRequest(
            workspace_id=ws, session_id="s0", page_size=50))
        while page.next_page_token:
            tokens.append(page.next_page_token)
            page = await stub.ListMessages(message_pb2.ListMessagesRequest(
                workspace_id=ws, session_id="s0", page_size=50,
                page_token=page.next_page_token))
        rng = random.Random(7)

        async def call(_: int) -> None:
            await stub.ListMessages(message_pb2.ListMessagesRequest(
                workspace_id=ws, session_id="s0", page_size=50,
                page_token=rng.choice(tokens)), timeout=10)

        return percentiles(await time_calls(queries, call))


async def prepare(server: ServerProcess, sizes: list[int], synthetic: bool, wait_s: float
                  ) -> dict[str, object]:
    """Load every size, wait until each is searchable and processed; what it took."""
    took: dict[str, object] = {}
    for size in sizes:
        fake = synthetic and size > 10_000
        start = time.perf_counter()
        await load(server.address, size, reasoning=size <= 10_000)
        loaded = time.perf_counter() - start
        if fake:
            await synthetic_vectors(server.dsn(), workspace(size))
        done = await wait_done(server.address, workspace(size), start, wait_s, poll_s=1)
        took[str(size)] = {"import_s": round(loaded, 1), "synthetic_vectors": fake,
                           "derivation": size <= 10_000,
                           "searchable_s": done.searchable_s and round(done.searchable_s, 1),
                           "processed_s": done.processed_s and round(done.processed_s, 1)}
        if done.processed_s is None:
            raise SystemExit(f"{size} messages not processed within {wait_s:.0f} s "
                             f"({done.embedding_pending} to embed, {done.open_jobs} jobs)")
    await settle(server.dsn())
    return took


def fmt(p: dict[str, float] | None) -> str:
    return f"{p['p50_ms']:.1f} / {p['p95_ms']:.1f}" if p else "—"


async def main(sizes: list[int], faces: list[str], queries: int, synthetic: bool,
               wait_s: float, name: str = "search") -> None:
    with server_process("up") as server:
        took = await prepare(server, sizes, synthetic, wait_s)
        rows: list[dict[str, object]] = []
        for size in sizes:
            for scope in SCOPES:
                row: dict[str, object] = {"messages": size, "call": f"SearchMessages, {scope}",
                                          "in scope": scope_size(size, scope)}
                for face_name in faces:
                    face = open_face(face_name, server)
                    try:
                        row[face_name] = await search_latency(face, size, scope, queries)
                    finally:
                        await face.aclose()
                rows.append(row)
            rows.append({"messages": size, "call": "ListMessages page of 50",
                         "in scope": scope_size(size, "session"),
                         "grpc": await list_latency(server.address, size, queries)})
        rss = server.rss_mb()
    print_table(f"Search through `honcho-grpc up`, p50 / p95 ms, query embedding included "
                f"(server RSS {rss:.0f} MB; loads: {took})",
                [{"messages": r["messages"], "call": r["call"], "in scope": r["in scope"],
                  **{f"{n} p50/p95": fmt(r.get(n)) for n in faces}} for r in rows])
    write_json(name, {"rows": rows, "loads": took, "command": "up",
                          "server_rss_mb": round(rss)})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    p.add_argument("--large", action="store_true", help="add 100,000 messages (slow)")
    p.add_argument("--face", nargs="+", choices=FACES, default=list(FACES))
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--synthetic-vectors", action="store_true",
                   help="random stored vectors above 10k messages instead of the model's")
    p.add_argument("--wait", type=float, default=1800.0,
                   help="seconds a size may take to be searchable and processed")
    p.add_argument("--name", default="search", help="results file name")
    return p


if __name__ == "__main__":
    args = parser().parse_args()
    sizes = sorted(set(args.sizes + ([100_000] if args.large else [])))
    asyncio.run(main(sizes, args.face, args.queries, args.synthetic_vectors, args.wait,
                     args.name))
