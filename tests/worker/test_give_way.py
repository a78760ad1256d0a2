"""queue.yield_to_embedding_seconds: before a batch, a worker waits while messages wait for
their embedding, at most that long; `honcho-grpc up` sets it for the worker it starts.

The backlog row of these tests is held FOR UPDATE by the test: a server's embedder running in
the same database (other tests') claims with SKIP LOCKED and so leaves it alone, while the
worker's check still sees it waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast

import asyncpg

from honcho_grpc.db.pool import Database
from honcho_grpc.settings import Settings
from honcho_grpc.store import backlog
from honcho_grpc.supervisor import UP_YIELD_TO_EMBEDDING_SECONDS, spawn_worker
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.runner import BacklogGlance
from honcho_grpc.worker.tasks import Handler, Result, TaskContext
from tests.conftest import make_settings
from tests.worker.conftest import eventually, running_worker, worker_settings
from tests.worker.test_queue import add_jobs


@asynccontextmanager
async def waiting_message(pg_dsn: str, ws: str) -> AsyncIterator[asyncpg.Connection]:
    """A message of `ws` waiting for its embedding until the yielded connection deletes it
    (and commits: leave the block)."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("INSERT INTO workspaces (workspace_id) VALUES ($1) "
                           "ON CONFLICT DO NOTHING", ws)
        await conn.execute("INSERT INTO embedding_backlog (workspace_id, message_id) "
                           "VALUES ($1, 'waiting')", ws)
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM embedding_backlog WHERE workspace_id = $1 "
                               "FOR UPDATE", ws)
            yield conn
    finally:
        await conn.execute("DELETE FROM embedding_backlog WHERE workspace_id = $1", ws)
        await conn.close()


def recorder(ran: list[float]) -> Handler:
    async def handler(ctx: TaskContext, jobs: list[Job]) -> Result:
        ran.append(time.monotonic())
        return Result()
    return handler


def has_run(ran: list[float]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(ran)
    return check


async def test_derivation_waits_for_the_backlog_at_most_the_set_time(
        db: Database, pg_dsn: str, ws: str) -> None:
    ran: list[float] = []
    settings = worker_settings(pg_dsn, [ws], queue={"yield_to_embedding_seconds": 1.5})
    async with waiting_message(pg_dsn, ws), \
            running_worker(settings, handlers={"t": recorder(ran)}):
        start = time.monotonic()
        await add_jobs(db.pool, ws, [f"t:{ws}:a"])
        await eventually(has_run(ran))
        # The backlog never emptied: the batch ran once the wait was over, not before.
        assert ran[0] - start >= 1.4


async def test_derivation_goes_once_the_backlog_is_drained(
        db: Database, pg_dsn: str, ws: str) -> None:
    ran: list[float] = []
    # The backlog is the database's, shared with other tests: rows they leave behind can keep
    # it from emptying, and the bound (8 s) then lets the batch go.
    settings = worker_settings(pg_dsn, [ws], queue={"yield_to_embedding_seconds": 8})
    async with running_worker(settings, handlers={"t": recorder(ran)}):
        async with waiting_message(pg_dsn, ws) as conn:
            await add_jobs(db.pool, ws, [f"t:{ws}:a"])
            await asyncio.sleep(1.0)
            assert not ran  # gave way
            await conn.execute("DELETE FROM embedding_backlog WHERE workspace_id = $1", ws)
            drained = time.monotonic()
        await eventually(has_run(ran), within=20)
        assert ran[0] >= drained


async def test_without_the_setting_derivation_does_not_wait(
        db: Database, pg_dsn: str, ws: str) -> None:
    ran: list[float] = []
    settings = worker_settings(pg_dsn, [ws])
    assert settings.queue.yield_to_embedding_seconds == 0
    async with waiting_message(pg_dsn, ws), \
            running_worker(settings, handlers={"t": recorder(ran)}):
        await add_jobs(db.pool, ws, [f"t:{ws}:a"])
        await eventually(has_run(ran), within=5)


def test_up_gives_its_worker_the_setting_unless_configured(settings: Settings) -> None:
    def worker_env(given: Settings | None) -> dict[str, str]:
        proc = spawn_worker("postgresql://nobody@127.0.0.1:1/none", given)
        try:
            # The child execs twice (die_with_parent's wrapper, then the worker); read in the
            # middle of an exec, /proc/PID/environ can come back empty. Every read that is
            # not mid-exec holds DB_CONNECTION_URI, which spawn_worker always sets.
            deadline = time.monotonic() + 10
            while True:
                with open(f"/proc/{proc.pid}/environ", "rb") as f:
                    pairs = f.read().split(b"\0")
                env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
                if "DB_CONNECTION_URI" in env or time.monotonic() > deadline:
                    return env
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()

    assert worker_env(settings)["QUEUE_YIELD_TO_EMBEDDING_SECONDS"] == str(
        UP_YIELD_TO_EMBEDDING_SECONDS)
    configured = make_settings(settings.db.connection_uri or "",
                               queue={"yield_to_embedding_seconds": 0})
    assert "QUEUE_YIELD_TO_EMBEDDING_SECONDS" not in worker_env(configured)


class CountingPool:
    """The real pool, counting the statements asked of it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.asked = 0

    async def fetchval(self, query: str, *args: object) -> object:
        self.asked += 1
        return await self.pool.fetchval(query, *args)


async def test_units_giving_way_share_one_look_at_the_backlog(
        db: Database, pg_dsn: str, ws: str) -> None:
    glance = BacklogGlance(fresh_for=1.0)
    counting = CountingPool(db.pool)
    pool = cast(asyncpg.Pool, counting)
    async with waiting_message(pg_dsn, ws) as conn:
        answers = await asyncio.gather(*(glance.any_due(pool) for _ in range(8)))
        assert answers == [True] * 8 and counting.asked == 1
        await conn.execute("DELETE FROM embedding_backlog WHERE workspace_id = $1", ws)
    # Other tests' leftovers may keep the shared backlog waiting: compare with the truth.
    truth = await backlog.any_due(db.pool)
    assert await glance.any_due(pool) is True  # still the fresh answer
    await asyncio.sleep(1.0)
    assert await glance.any_due(pool) is truth and counting.asked == 2
