"""Faults with real worker processes: killed mid-task, a provider failing then recovering,
PostgreSQL restarted underneath, and a burst of 10,000 messages. Nothing is lost and no
conclusion is duplicated."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import asyncpg
from honcho_grpc_proto.v1 import message_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.domain.messages import write_messages
from honcho_grpc.ids import new_id
from honcho_grpc.model import NewMessage
from honcho_grpc.providers.tokens import count_tokens
from tests.conftest import Stubs, make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Failure, Reply
from tests.postgres_process import PostgresProcess
from tests.worker.conftest import (
    WorkerProcess,
    eventually,
    process_env,
    queue_rows,
)

_TARGETS = re.compile(r"Targets: (.*)")
_LINE = re.compile(r"^(?P<stamp>\S+ \S+) (?P<speaker>[^:]+): (?P<text>.*)$")


def derive(body: dict[str, Any]) -> Reply:
    """The fake provider's answer to the worker's prompts: one explicit conclusion per line
    a target participant said (so derived conclusions are predictable), nothing else."""
    messages = body.get("messages", [])
    system = next((str(m["content"]) for m in messages if m["role"] == "system"), "")
    user = "\n".join(str(m["content"]) for m in messages if m["role"] == "user")
    if '"explicit"' in system:
        listed = _TARGETS.search(system)
        targets = set(re.findall(r'"([A-Za-z0-9_-]+)"', listed[1])) if listed else set()
        facts = [{"about": m["speaker"], "content": f"{m['speaker']} said: {m['text']}",
                  "said_at": m["stamp"]}
                 for m in map(_LINE.match, user.splitlines())
                 if m and m["speaker"] in targets]
        return Reply(json.dumps({"explicit": facts}))
    if '"card"' in system:
        return Reply(json.dumps({"card": []}))
    if "superseded" in system:
        return Reply(json.dumps({"deductive": [], "inductive": [], "contradictions": [],
                                 "superseded": []}))
    return Reply("A summary.")


def fake_openai() -> FakeOpenAI:
    """An OpenAI-compatible provider answering with `derive`; served from its own thread, as
    the test's loop blocks while worker processes start (and call it)."""
    fake = FakeOpenAI()
    fake.respond = derive
    return fake


def start_workers(procs: list[WorkerProcess], env: dict[str, str],
                  count: int = 1) -> list[WorkerProcess]:
    """Spawn `count` workers at once (their start-ups overlap), then wait for each."""
    started = [WorkerProcess(env) for _ in range(count)]
    procs.extend(started)
    for proc in started:
        proc.wait_started()
    return started


async def settled(pool: asyncpg.Pool, ws: str, expected: int) -> bool:
    """All `expected` rows of the workspace are completed (card refreshes aside: extraction
    queues them as it goes, see worker/tasks/card.py)."""
    row = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'completed') AS done, count(*) AS n "
        "FROM queue WHERE workspace_id = $1 AND task_type <> 'card'", ws)
    return bool(row["done"] == row["n"] == expected)


async def queue_summary(pool: asyncpg.Pool, ws: str) -> list[tuple[Any, ...]]:
    """The workspace's queue rows by type and status (attempts, a last error, how far off
    the latest is due), then its leases (unit, holder, time left)."""
    rows = await pool.fetch(
        "SELECT task_type, status, count(*), max(attempts), max(last_error), "
        "max(run_after) - now() FROM queue WHERE workspace_id = $1 GROUP BY 1, 2 "
        "ORDER BY 1, 2", ws)
    leases = await pool.fetch(
        "SELECT work_unit_key, worker_id, expires_at - now() FROM work_unit_leases "
        "WHERE workspace_id = $1", ws)
    return [tuple(r) for r in rows] + [("lease", *r) for r in leases]


async def duplicates(pool: asyncpg.Pool, ws: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT observer_id, observed_id, content, count(*) AS n, max(times_derived) AS td "
        "FROM conclusions WHERE workspace_id = $1 GROUP BY 1, 2, 3 "
        "HAVING count(*) > 1 OR max(times_derived) > 1", ws))


def openai_embeddings_env(url: str) -> dict[str, str]:
    return {"EMBEDDING_PROVIDER": "openai", "EMBEDDING_OPENAI_BASE_URL": url,
            "EMBEDDING_OPENAI_API_KEY": "test", "EMBEDDING_MODEL": "fake-embedding"}


async def test_killed_worker_is_taken_over_without_duplicates(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str,
        worker_processes: list[WorkerProcess]) -> None:
    with fake_openai().in_thread() as fake:
        env = process_env(pg_dsn, [ws], QUEUE_LEASE_SECONDS="2",
                          **openai_embeddings_env(fake.url))
        # Two workers: one takes the batch, the other waits while the lease is alive.
        workers = {f"-{w.proc.pid}": w for w in start_workers(worker_processes, env, 2)}
        fake.hold.clear()  # the next embedding call hangs: its worker is stuck mid-task
        fake.arrived.clear()  # (the workers' start-up dimension probes arrived already)
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s", messages=[
                message_pb2.MessageInput(peer_id="ann", content="I grow tomatoes."),
                message_pb2.MessageInput(peer_id="ann", content="I repair old bicycles.")]))
        assert await asyncio.to_thread(fake.arrived.wait, 20)
        stuck = [r for r in await queue_rows(db.pool, ws) if r["status"] == "in_progress"]
        assert stuck, "a worker holds the batch"
        owner = await db.pool.fetchval("SELECT claimed_by FROM queue WHERE id = $1",
                                       stuck[0]["id"])
        victim = next(w for suffix, w in workers.items() if owner.endswith(suffix))
        victim.kill()
        fake.hold.set()
        await eventually(lambda: settled(db.pool, ws, 2), within=30)
    rows = [r for r in await queue_rows(db.pool, ws) if r["task_type"] == "representation"]
    assert [r["attempts"] for r in rows] == [2, 2]  # one batch; the killed attempt counts
    assert not (await db.pool.fetchval(
        "SELECT claimed_by FROM queue WHERE id = $1", rows[0]["id"])).endswith(
        f"-{victim.proc.pid}")
    contents = sorted(r["content"] for r in await db.pool.fetch(
        "SELECT content FROM conclusions WHERE workspace_id = $1", ws))
    assert contents == ["ann grows tomatoes", "ann repairs old bicycles"]
    assert await duplicates(db.pool, ws) == []


def openai_llm_env(url: str) -> dict[str, str]:
    # No retries inside the provider: every failure is a queue attempt.
    return {"LLM_PROVIDER": "openai", "LLM_OPENAI_BASE_URL": url, "LLM_OPENAI_API_KEY": "test",
            "LLM_MODEL": "fake-model", "LLM_MAX_RETRIES": "0"}


async def test_provider_failing_then_recovering(stubs: Stubs, db: Database, pg_dsn: str,
                                                ws: str,
                                                worker_processes: list[WorkerProcess]) -> None:
    with fake_openai().in_thread() as fake:
        fake.push(Failure(500), Failure(500))  # two attempts fail, the third succeeds
        start_workers(worker_processes, process_env(pg_dsn, [ws], **openai_llm_env(fake.url)))
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="ann", content="I speak Finnish.")]))
        await eventually(lambda: settled(db.pool, ws, 1), within=30)
    row = (await queue_rows(db.pool, ws))[0]
    assert row["attempts"] == 3 and row["last_error"] is None
    assert row["usage"]["calls"] >= 1 and row["usage"]["input_tokens"] > 0
    contents = await db.pool.fetch("SELECT content FROM conclusions WHERE workspace_id = $1", ws)
    assert [r["content"] for r in contents] == ["ann said: I speak Finnish."]


async def test_rejected_calls_park_and_retry_from_the_cli(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str,
        worker_processes: list[WorkerProcess]) -> None:
    with fake_openai().in_thread() as fake:
        fake.push(Failure(401))  # a bad key: no point retrying
        env = process_env(pg_dsn, [ws], **openai_llm_env(fake.url))
        start_workers(worker_processes, env)
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="ann", content="I row boats.")]))
        await eventually(lambda: _failed(db.pool, ws), within=30)
        row = (await queue_rows(db.pool, ws))[0]
        assert row["attempts"] == 1 and "401" in row["last_error"]
        # The key is fixed (the fake answers again): put the failed work back.
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "honcho_grpc.cli", "worker",
                             "--retry-failed", "--workspace", ws],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
        assert "1 failed queue rows queued again" in done.stdout, done.stderr
        await eventually(lambda: settled(db.pool, ws, 1), within=30)


async def _failed(pool: asyncpg.Pool, ws: str) -> bool:
    rows = await pool.fetch("SELECT status FROM queue WHERE workspace_id = $1", ws)
    return bool(rows) and all(r["status"] == "failed" for r in rows)


async def write(dsn: str, ws: str, contents: list[str]) -> None:
    settings = make_settings(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        from honcho_grpc.db.pool import init_connection

        await init_connection(conn)
        async with conn.transaction():
            await write_messages(conn, settings, ws, "s", [
                NewMessage(new_id(), "ann", c, {}, {}, count_tokens(c), None)
                for c in contents])
    finally:
        await conn.close()


async def test_postgres_restart_under_the_worker(own_postgres: tuple[PostgresProcess, str],
                                                 worker_processes: list[WorkerProcess]) -> None:
    pg, dsn = own_postgres
    ws = "restart"
    start_workers(worker_processes, process_env(dsn, [ws]))
    await write(dsn, ws, [f"I visited city number {i}." for i in range(20)])
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    await eventually(lambda: settled(pool, ws, 21), within=30)  # 20 + one summary
    await pool.close()
    pg.stop()
    await asyncio.sleep(1.0)  # the worker's connections break; it keeps trying
    pg.start()
    await write(dsn, ws, [f"I visited town number {i}." for i in range(20)])
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        try:
            await eventually(lambda: settled(pool, ws, 42), within=40)
        except AssertionError as exc:  # what the queue holds, for the next look at a flake
            raise AssertionError(f"{exc}; the queue: {await queue_summary(pool, ws)}") from None
        assert await pool.fetchval("SELECT count(*) FROM conclusions") == 40
        assert await duplicates(pool, ws) == []
    finally:
        await pool.close()


BURST = 10_000
STATEMENT_EVERY = 10  # one message in ten states a fact; the rest is chit-chat


def burst_text(n: int) -> str:
    return f"I own {n} model trains." if n % STATEMENT_EVERY == 0 else f"ok, number {n}?"


async def test_burst_of_ten_thousand_messages(stubs: Stubs, db: Database, pg_dsn: str,
                                              ws: str,
                                              worker_processes: list[WorkerProcess]) -> None:
    env = process_env(pg_dsn, [ws], QUEUE_LEASE_SECONDS="10")
    start_workers(worker_processes, env, 2)
    started = time.monotonic()
    sessions = 10
    for batch in range(BURST // 100):
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=f"s{batch % sessions}", messages=[
                message_pb2.MessageInput(peer_id=f"p{batch % sessions}-{i % 2}",
                                         content=burst_text(batch * 100 + i))
                for i in range(100)]))
    ingested = time.monotonic() - started
    await eventually(lambda: _no_open(db, ws), within=150, interval=0.5)
    elapsed = time.monotonic() - started
    counts = {r["status"]: r["n"] for r in await db.pool.fetch(
        "SELECT status, count(*) AS n FROM queue WHERE workspace_id = $1 "
        "AND task_type = 'representation' GROUP BY 1", ws)}
    assert counts == {"completed": BURST}, counts
    contents = await db.pool.fetch(
        "SELECT content FROM conclusions WHERE workspace_id = $1 AND level = 'explicit'", ws)
    assert len(contents) == BURST // STATEMENT_EVERY
    assert await duplicates(db.pool, ws) == []
    summaries = await db.pool.fetchval(
        "SELECT count(*) FROM summaries WHERE workspace_id = $1", ws)
    assert summaries == 2 * sessions  # a short and a long one per session
    failed = await db.pool.fetchval(
        "SELECT count(*) FROM queue WHERE workspace_id = $1 AND status = 'failed'", ws)
    assert failed == 0
    print(f"\n{BURST} messages stored in {ingested:.1f}s, derived in {elapsed:.1f}s")


async def _no_open(db: Database, ws: str) -> bool:
    n = await db.pool.fetchval(
        "SELECT count(*) FROM queue WHERE workspace_id = $1 "
        "AND status IN ('pending', 'in_progress')", ws)
    return n == 0
