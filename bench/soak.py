"""A bounded mixed load on loopback against one `honcho-grpc serve` process: writes
(CreateMessages of 20), ListMessages pages, SearchMessages, GetContext and StreamChat read to
the end, drawn at random by `--concurrency` clients for `--seconds`. Reports throughput, p50
and p99 per call, errors by status code, and the server's memory at the start, the end and
the peak (sampled every second) — growth under a steady load is what a leak looks like.

    .venv/bin/python -m bench.soak [--seconds 60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import grpc

from bench.common import percentiles, print_table, server_process, write_json
from bench.ingest import text
from honcho_grpc.gen.honcho.v1 import (
    dialectic_pb2,
    dialectic_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

WS = "soak"
SESSIONS = 8
# Relative frequency of each call in the mix.
MIX = {"CreateMessages": 4, "ListMessages": 3, "SearchMessages": 2, "GetContext": 2,
       "StreamChat": 1}


Call = Callable[[], Awaitable[None]]


def calls(channel: grpc.aio.Channel, rng: random.Random) -> dict[str, Call]:
    messages = message_pb2_grpc.MessageServiceStub(channel)
    search = search_pb2_grpc.SearchServiceStub(channel)
    sessions = session_pb2_grpc.SessionServiceStub(channel)
    dialectic = dialectic_pb2_grpc.DialecticServiceStub(channel)
    counter = iter(range(10**9))

    def session() -> str:
        return f"s{rng.randrange(SESSIONS)}"

    async def create() -> None:
        n = next(counter)
        await messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=WS, session_id=session(), messages=[
                message_pb2.MessageInput(peer_id=f"p{(n + i) % 4}", content=text(n * 20 + i))
                for i in range(20)]), timeout=30)

    async def page() -> None:
        await messages.ListMessages(message_pb2.ListMessagesRequest(
            workspace_id=WS, session_id=session(), page_size=50, reverse=True), timeout=30)

    async def find() -> None:
        await search.SearchMessages(search_pb2.SearchMessagesRequest(
            workspace_id=WS, query=f"{text(rng.randrange(10**6))} {next(counter)}", limit=10),
            timeout=30)

    async def context() -> None:
        await sessions.GetContext(session_pb2.GetContextRequest(
            workspace_id=WS, session_id=session(), tokens=2000), timeout=30)

    async def chat() -> None:
        stream = dialectic.StreamChat(dialectic_pb2.StreamChatRequest(
            query=dialectic_pb2.ChatQuery(workspace_id=WS, peer_id="p0",
                                          query="what is p0 learning these days?")),
            timeout=60)
        async for _ in stream:
            pass

    return {"CreateMessages": create, "ListMessages": page, "SearchMessages": find,
            "GetContext": context, "StreamChat": chat}


async def client(address: str, seed: int, until: float,
                 latencies: dict[str, list[float]], errors: Counter[str]) -> None:
    rng = random.Random(seed)
    async with grpc.aio.insecure_channel(address) as channel:
        table = calls(channel, rng)
        names, weights = list(MIX), list(MIX.values())
        while time.monotonic() < until:
            name = rng.choices(names, weights)[0]
            start = time.perf_counter()
            try:
                await table[name]()
            except grpc.aio.AioRpcError as err:
                errors[f"{name}: {err.code().name}"] += 1
                continue
            latencies[name].append((time.perf_counter() - start) * 1000)


async def main(seconds: float, concurrency: int) -> None:
    with server_process() as server:
        # A starting corpus, so that reads have something to read from the first second.
        async with grpc.aio.insecure_channel(server.address) as channel:
            seed_calls = calls(channel, random.Random(0))
            for _ in range(SESSIONS * 5):
                await seed_calls["CreateMessages"]()
        rss = [server.rss_mb()]
        latencies: dict[str, list[float]] = defaultdict(list)
        errors: Counter[str] = Counter()
        until = time.monotonic() + seconds
        clients = [asyncio.create_task(client(server.address, i, until, latencies, errors))
                   for i in range(concurrency)]
        while not all(c.done() for c in clients):
            await asyncio.sleep(1)
            rss.append(server.rss_mb())
        await asyncio.gather(*clients)
    rows = [{"call": name, "calls": len(latencies[name]),
             "per_s": round(len(latencies[name]) / seconds, 1),
             **{k: v for k, v in percentiles(latencies[name]).items() if k != "n"}}
            for name in MIX]
    total = sum(len(v) for v in latencies.values())
    print_table(f"soak: {seconds:.0f} s, {concurrency} clients, {total / seconds:.0f} calls/s",
                rows)
    memory = {"rss_start_mb": round(rss[0]), "rss_end_mb": round(rss[-1]),
              "rss_peak_mb": round(max(rss)), "growth_mb": round(rss[-1] - rss[0])}
    print(f"errors: {dict(errors) or 'none'}")
    print(f"server RSS: start {memory['rss_start_mb']} MB, end {memory['rss_end_mb']} MB, "
          f"peak {memory['rss_peak_mb']} MB")
    write_json("soak", {"seconds": seconds, "concurrency": concurrency, "calls": rows,
                        "calls_per_s": round(total / seconds, 1), "errors": dict(errors),
                        "memory": memory})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.concurrency))
