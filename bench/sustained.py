"""Sustained ingest: does the system keep up with a steady stream of messages? Run as users
run it (`honcho-grpc up`: the server with its embedder, the worker with the configured
provider, `local` by default).

One gRPC client writes CreateMessages batches of 100 at `--rate` messages a second for
`--seconds` (a batch is sent when it is due; when acknowledgements fall behind the schedule,
batches go back to back and the achieved rate says so), spread over 10 sessions of 4
speakers. Every `--every` seconds, GetQueueStatus of the workspace, as a caller would see it:
the embedding backlog (messages not yet vector-searchable) and the open derivation jobs.
After the writes stop, it notes when the embedding backlog and the derivation jobs emptied.

Reported: per interval, the messages acknowledged, the achieved rate and both backlogs; at
the end of the writes, how far behind each stage is (messages still waiting for their
embedding, open jobs) and how long after the last write each was done -- the figure issue 13
asks for ("how far behind after the load"). CPU-seconds per 1,000 messages by process.

    .venv/bin/python -m bench.sustained [--rate 1000] [--seconds 60] [--wait 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from honcho_grpc_proto.v1 import workspace_pb2, workspace_pb2_grpc

from bench import cpu
from bench.common import print_table, server_process, write_json
from bench.faces import GrpcFace, wait_done
from bench.ingest import BATCH, drafts

SESSIONS = 10


@dataclass
class Sample:
    at_s: float
    acked: int
    embedding_pending: int
    open_jobs: int


async def write_paced(face: GrpcFace, ws: str, rate: float, seconds: float,
                      acked: list[int]) -> float:
    """Write at `rate` for `seconds`; `acked[0]` counts acknowledged messages as they come.
    Returns the seconds the writes took."""
    start = time.perf_counter()
    total = int(rate * seconds) // BATCH * BATCH
    for n, first in enumerate(range(0, total, BATCH)):
        due = start + first / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        await face.create(ws, f"s{n % SESSIONS}", drafts(first))
        acked[0] += BATCH
    return time.perf_counter() - start


async def status(stub: workspace_pb2_grpc.WorkspaceServiceAsyncStub, ws: str, start: float,
                 acked: int) -> Sample:
    got = await stub.GetQueueStatus(workspace_pb2.GetQueueStatusRequest(workspace_id=ws),
                                    timeout=30)
    return Sample(round(time.perf_counter() - start, 1), acked, got.embedding.pending,
                  got.totals.pending + got.totals.in_progress)


async def sample(address: str, ws: str, start: float, every: float, acked: list[int],
                 samples: list[Sample], stop: asyncio.Event) -> None:
    """A sample every `every` seconds while writing, and one when the writes stop."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub: workspace_pb2_grpc.WorkspaceServiceAsyncStub = \
            workspace_pb2_grpc.WorkspaceServiceStub(channel)
        while not stop.is_set():
            samples.append(await status(stub, ws, start, acked[0]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
        samples.append(await status(stub, ws, start, acked[0]))


@dataclass
class Drained:
    """Seconds from the start of the writes until each backlog was first empty (None: not
    within the limit)."""

    searchable_s: float | None = None
    derived_s: float | None = None


async def drain(address: str, ws: str, start: float, limit_s: float,
                poll_s: float = 0.5) -> tuple[Drained, Sample]:
    """Poll until the embedding backlog and the derivation jobs are both empty, noting when
    each emptied (derivation may finish before the embeddings, or after)."""
    done = Drained()
    async with grpc.aio.insecure_channel(address) as channel:
        stub: workspace_pb2_grpc.WorkspaceServiceAsyncStub = \
            workspace_pb2_grpc.WorkspaceServiceStub(channel)
        while True:
            last = await status(stub, ws, start, 0)
            if done.searchable_s is None and last.embedding_pending == 0:
                done.searchable_s = last.at_s
            if done.derived_s is None and last.open_jobs == 0:
                done.derived_s = last.at_s
            if (done.searchable_s is not None and done.derived_s is not None) \
                    or last.at_s > limit_s:
                return done, last
            await asyncio.sleep(poll_s)


def interval_rows(samples: list[Sample]) -> list[dict[str, Any]]:
    rows, before = [], Sample(0.0, 0, 0, 0)
    for s in samples:
        span = s.at_s - before.at_s
        rows.append({"t (s)": f"{s.at_s:.0f}", "acked": f"{s.acked:,}",
                     "msg/s in interval": f"{(s.acked - before.acked) / span:,.0f}"
                     if span > 0 else "",
                     "embedding backlog": f"{s.embedding_pending:,}",
                     "open derivation jobs": f"{s.open_jobs:,}"})
        before = s
    return rows


async def run(rate: float, seconds: float, every: float, wait_s: float,
              name: str = "sustained") -> dict[str, Any]:
    ws = "bench-sustained"
    load_before = os.getloadavg()[0]
    with server_process("up") as server:
        face = GrpcFace(server.address)
        await face.create(ws, "warm-up", drafts(10**7))  # connections and first-use costs
        await wait_done(server.address, ws, time.perf_counter(), wait_s)
        acked, stop = [0], asyncio.Event()
        samples: list[Sample] = []
        cpu_start = cpu.snapshot(server.proc.pid)
        start = time.perf_counter()
        sampler = asyncio.create_task(
            sample(server.address, ws, start, every, acked, samples, stop))
        try:
            writing_s = await write_paced(face, ws, rate, seconds, acked)
        finally:
            await face.aclose()
        cpu_writes = cpu.snapshot(server.proc.pid)
        stop.set()
        await sampler
        end_of_writes = samples[-1]
        done, left = await drain(server.address, ws, start, writing_s + wait_s)
        cpu_done = cpu.snapshot(server.proc.pid)
    load_after = os.getloadavg()[0]

    def after_writes(at: float | None) -> float | None:
        return None if at is None else round(max(0.0, at - writing_s), 1)

    result: dict[str, Any] = {
        "command": "up", "target_per_s": rate, "seconds": seconds,
        "messages": acked[0], "writing_s": round(writing_s, 1),
        # On schedule, the last batch is sent at (n - 100) / rate: the writes span n / rate.
        "achieved_per_s": round(acked[0] / max(writing_s, acked[0] / rate)),
        "at_end_of_writes": asdict(end_of_writes),
        "searchable_after_last_write_s": after_writes(done.searchable_s),
        "derived_after_last_write_s": after_writes(done.derived_s),
        "processed_after_last_write_s": after_writes(
            None if done.searchable_s is None or done.derived_s is None
            else max(done.searchable_s, done.derived_s)),
        "left_embedding": left.embedding_pending, "left_jobs": left.open_jobs,
        "cpu_s_per_1k_writes": cpu.per_thousand(cpu_start, cpu_writes, acked[0]),
        "cpu_s_per_1k": cpu.per_thousand(cpu_start, cpu_done, acked[0]),
        "load_before": load_before, "load_after": load_after,
        "samples": [asdict(s) for s in samples]}
    print_table(f"{acked[0]:,} messages at a target of {rate:,.0f} msg/s through `honcho-grpc "
                f"up` (achieved {result['achieved_per_s']:,} msg/s over {writing_s:.0f} s; "
                f"load average {load_before:.1f} before, {load_after:.1f} after)",
                interval_rows(samples))
    print_table("after the last write", [{
        "embedding backlog then": f"{end_of_writes.embedding_pending:,}",
        "open jobs then": f"{end_of_writes.open_jobs:,}",
        "searchable after (s)": result["searchable_after_last_write_s"],
        "derived after (s)": result["derived_after_last_write_s"],
        "CPU-s/1k msgs (server, worker, pg)": ", ".join(
            f"{result['cpu_s_per_1k'][role]:.1f}" for role in cpu.ROLES)}])
    write_json(name, result)
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="messages a second to write")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to write")
    p.add_argument("--every", type=float, default=5.0, help="seconds between status samples")
    p.add_argument("--wait", type=float, default=1800.0,
                   help="seconds to wait for the backlog after the writes")
    p.add_argument("--name", default="sustained", help="results file name")
    return p


if __name__ == "__main__":
    args = parser().parse_args()
    asyncio.run(run(args.rate, args.seconds, args.every, args.wait, args.name))
