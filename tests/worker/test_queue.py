"""Queue semantics with in-process workers and test handlers: order and exclusivity per work
unit, retries with backoff, parking and retrying failures, status by lease, housekeeping."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from honcho_grpc_proto.v1 import workspace_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.llm import LLMError
from honcho_grpc.worker.db import make_pool
from honcho_grpc.worker.queue import Job, retry_failed
from honcho_grpc.worker.reasoning import Truncated
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext
from honcho_grpc.worker.values import Usage
from tests.conftest import Stubs
from tests.worker.conftest import eventually, queue_rows, running_worker, worker_settings


async def add_jobs(pool: asyncpg.Pool, ws: str, keys: list[str], task_type: str = "t",
                   session: str | None = None) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO workspaces (workspace_id) VALUES ($1) "
                           "ON CONFLICT DO NOTHING", ws)
        await conn.executemany(
            "INSERT INTO queue (workspace_id, task_type, work_unit_key, session_id, payload) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(ws, task_type, k, session, {"n": i}) for i, k in enumerate(keys)])
        await conn.execute("SELECT pg_notify('honcho_queue', $1)", ws)


async def statuses(db: Database, ws: str) -> list[str]:
    return [r["status"] for r in await queue_rows(db.pool, ws)]


async def all_done(db: Database, ws: str, status: str = "completed") -> bool:
    found = await statuses(db, ws)
    return bool(found) and set(found) == {status}


async def test_units_run_in_order_one_worker_at_a_time(db: Database, pg_dsn: str,
                                                       ws: str) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    active: set[str] = set()
    overlaps: list[str] = []

    async def handler(ctx: TaskContext, jobs: list[Job]) -> Result:
        key = jobs[0].work_unit_key
        if key in active:
            overlaps.append(key)
        active.add(key)
        await asyncio.sleep(0.01)
        seen[key].extend(j.payload["n"] for j in jobs)
        active.discard(key)
        return Result()

    keys = [f"t:{ws}:{i % 4}" for i in range(80)]
    settings = worker_settings(pg_dsn, [ws], queue={"concurrency": 3})
    async with running_worker(settings, handlers={"t": handler}, worker_id="a"), \
            running_worker(settings, handlers={"t": handler}, worker_id="b"):
        await add_jobs(db.pool, ws, keys)
        await eventually(lambda: all_done(db, ws))
    assert not overlaps
    for key, ns in seen.items():
        assert ns == sorted(ns) and len(ns) == 20, key
    rows = await db.pool.fetch("SELECT DISTINCT claimed_by FROM queue WHERE workspace_id = $1",
                               ws)
    assert len(rows) >= 1


async def test_failures_retry_with_backoff_then_succeed(db: Database, pg_dsn: str,
                                                        ws: str) -> None:
    calls: list[float] = []

    async def flaky(ctx: TaskContext, jobs: list[Job]) -> Result:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 3:
            raise RuntimeError("provider unavailable")
        return Result()

    async with running_worker(worker_settings(pg_dsn, [ws]), handlers={"t": flaky}):
        await add_jobs(db.pool, ws, [f"t:{ws}"])
        await eventually(lambda: all_done(db, ws))
    row = (await queue_rows(db.pool, ws))[0]
    assert row["attempts"] == 3 and row["last_error"] is None
    # Backoff grows: 0.1 s then 0.2 s (+-25% jitter).
    assert calls[1] - calls[0] >= 0.07 and calls[2] - calls[1] >= 0.14


async def test_exhausted_rows_park_as_failed_and_can_be_retried(db: Database, pg_dsn: str,
                                                                ws: str) -> None:
    healthy = False

    async def broken(ctx: TaskContext, jobs: list[Job]) -> Result:
        if not healthy:
            raise RuntimeError("still broken")
        return Result()

    settings = worker_settings(pg_dsn, [ws])
    async with running_worker(settings, handlers={"t": broken}):
        await add_jobs(db.pool, ws, [f"t:{ws}:a", f"t:{ws}:a"])
        await eventually(lambda: all_done(db, ws, "failed"))
        rows = await queue_rows(db.pool, ws)
        assert all(r["attempts"] == 4 and "still broken" in r["last_error"] for r in rows)
        healthy = True
        pool = make_pool(pg_dsn, 2)
        await pool.open()
        try:
            assert await retry_failed(pool, ws) == 2
        finally:
            await pool.close()
        await eventually(lambda: all_done(db, ws))


async def test_permanent_errors_park_at_once_and_do_not_block_the_unit(
        db: Database, pg_dsn: str, ws: str) -> None:
    async def picky(ctx: TaskContext, jobs: list[Job]) -> Result:
        if jobs[0].payload["n"] == 0:
            raise PermanentError("bad payload")
        return Result()

    async with running_worker(worker_settings(pg_dsn, [ws]), handlers={"t": picky}):
        await add_jobs(db.pool, ws, [f"t:{ws}"] * 3)
        await eventually(lambda: _statuses_are(db, ws, ["failed", "completed", "completed"]))
    assert (await queue_rows(db.pool, ws))[0]["attempts"] == 1


async def _statuses_are(db: Database, ws: str, expected: list[str]) -> bool:
    return await statuses(db, ws) == expected


async def test_a_backing_off_head_holds_its_unit_only(db: Database, pg_dsn: str,
                                                      ws: str) -> None:
    order: list[tuple[str, int]] = []
    failed_once: set[int] = set()

    async def handler(ctx: TaskContext, jobs: list[Job]) -> Result:
        job = jobs[0]
        if job.work_unit_key.endswith(":slow") and job.id not in failed_once:
            failed_once.add(job.id)
            raise RuntimeError("first try fails")
        order.append((job.work_unit_key.rsplit(":", 1)[1], job.payload["n"]))
        return Result()

    settings = worker_settings(pg_dsn, [ws], queue={"retry_base_seconds": 0.5})
    async with running_worker(settings, handlers={"t": handler}):
        await add_jobs(db.pool, ws, [f"t:{ws}:slow", f"t:{ws}:slow", f"t:{ws}:fast"])
        await eventually(lambda: all_done(db, ws))
    # The fast unit did not wait for the slow one's retry; the slow unit stayed in order.
    assert order.index(("fast", 2)) < order.index(("slow", 0))
    assert order.index(("slow", 0)) < order.index(("slow", 1))


async def test_queue_status_counts_in_progress_by_live_lease(stubs: Stubs, db: Database,
                                                             pg_dsn: str, ws: str) -> None:
    release = asyncio.Event()

    async def blocked(ctx: TaskContext, jobs: list[Job]) -> Result:
        await release.wait()
        return Result()

    async def status() -> Any:
        return await stubs.workspaces.GetQueueStatus(
            workspace_pb2.GetQueueStatusRequest(workspace_id=ws))

    await stubs.workspaces.GetOrCreateWorkspace(
        workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws))
    await db.pool.execute("INSERT INTO sessions (workspace_id, session_id) VALUES ($1, 's')", ws)
    await add_jobs(db.pool, ws, [f"summary:{ws}:s:short", f"summary:{ws}:s:short"],
                   task_type="summary", session="s")
    assert (await status()).totals.pending == 2
    settings = worker_settings(pg_dsn, [ws], queue={"lease_seconds": 30.0})
    async with running_worker(settings, handlers={"summary": blocked}):
        await eventually(lambda: _in_progress(status))
        r = await status()
        assert (r.totals.pending, r.totals.in_progress) == (1, 1)
        assert r.sessions["s"].in_progress == 1
        # A lapsed lease (its worker presumed dead) makes the row claimable: pending again.
        await db.pool.execute("UPDATE work_unit_leases SET expires_at = now() - interval '1s' "
                              "WHERE workspace_id = $1", ws)
        assert (await status()).totals.pending == 2
        await db.pool.execute("UPDATE work_unit_leases SET expires_at = now() + interval '30s' "
                              "WHERE workspace_id = $1", ws)
        release.set()
        await eventually(lambda: _completed(status, 2))


async def _in_progress(status: Any) -> bool:
    return bool((await status()).totals.in_progress)


async def _completed(status: Any, n: int) -> bool:
    return bool((await status()).totals.completed == n)


async def test_housekeeping_removes_old_completed_rows(db: Database, pg_dsn: str,
                                                       ws: str) -> None:
    async def ok(ctx: TaskContext, jobs: list[Job]) -> Result:
        return Result()

    settings = worker_settings(pg_dsn, [ws], queue={"completed_retention_seconds": 0.0})
    async with running_worker(settings, handlers={"t": ok}) as worker:
        await add_jobs(db.pool, ws, [f"t:{ws}"] * 3)
        await eventually(lambda: all_done(db, ws))

        async def swept() -> bool:
            # Only one process sweeps at a time (a try-lock): another worker on this database
            # may hold it for a moment, in which case this sweep removes nothing and we retry.
            await worker.queue.housekeeping()
            return await queue_rows(db.pool, ws) == []

        await eventually(swept)


async def test_a_failure_is_logged_in_one_line_with_its_message(
        db: Database, pg_dsn: str, ws: str, caplog: pytest.LogCaptureFixture) -> None:
    # Expected failures (the model's answer cut, the provider refusing) in one line each with
    # their message; one of a kind no task expects with its traceback too.
    failures: list[Exception] = [
        Truncated("answer cut at 512 tokens", Usage(10, 512, 1)),
        LLMError("overloaded:\n  try again later", retryable=True, status_code=529),
        KeyError("speaker")]

    async def failing(ctx: TaskContext, jobs: list[Job]) -> Result:
        if failures:
            raise failures.pop(0)
        return Result()

    caplog.set_level(logging.WARNING, logger="honcho_grpc.worker.runner")
    async with running_worker(worker_settings(pg_dsn, [ws]), handlers={"t": failing}) as w:
        await add_jobs(db.pool, ws, [f"t:{ws}:a"])
        await eventually(lambda: all_done(db, ws))
    logged = [r for r in caplog.records if "task failed" in r.getMessage()]
    assert [r.getMessage() for r in logged] == [
        f"worker {w.worker_id}: t task failed (Truncated: answer cut at 512 tokens), attempt 1",
        f"worker {w.worker_id}: t task failed (LLMError: overloaded: try again later), "
        "attempt 2",
        f"worker {w.worker_id}: t task failed (KeyError: 'speaker'), attempt 3"]
    assert [r.exc_info is not None for r in logged] == [False, False, True]
    assert logged[2].exc_info is not None and logged[2].exc_info[0] is KeyError


async def test_unknown_task_types_park_as_failed(db: Database, pg_dsn: str, ws: str) -> None:
    async with running_worker(worker_settings(pg_dsn, [ws]), handlers={}):
        await add_jobs(db.pool, ws, [f"mystery:{ws}"], task_type="mystery")
        await eventually(lambda: all_done(db, ws, "failed"))
    assert "no handler" in (await queue_rows(db.pool, ws))[0]["last_error"]
