"""Worker fixtures: in-process workers (same event loop as the tests) and real worker
processes, both against the session's PostgreSQL. Each test's workers only take work of the
test's own workspaces, so queue rows left by other tests never interfere."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.settings import Settings
from honcho_grpc.worker.runner import Worker
from honcho_grpc.worker.tasks import Handler
from tests.conftest import ROOT, make_settings

FAST_QUEUE = {"poll_seconds": 0.5, "lease_seconds": 2.0, "heartbeat_seconds": 0.5,
              "retry_base_seconds": 0.1, "retry_max_seconds": 1.0, "max_attempts": 4,
              "housekeeping_seconds": 3600.0, "batch_wait_seconds": 0.3}


def worker_settings(dsn: str, workspaces: list[str], **overrides: dict[str, Any]) -> Settings:
    queue = {**FAST_QUEUE, "workspaces": workspaces, **overrides.pop("queue", {})}
    return make_settings(dsn, queue=queue, **overrides)


@asynccontextmanager
async def running_worker(settings: Settings, *, handlers: dict[str, Handler] | None = None,
                         worker_id: str | None = None) -> AsyncIterator[Worker]:
    worker = Worker(settings, settings.db.uri(), handlers=handlers,
                    embedder=FakeEmbedder(settings.embedding.dimensions), worker_id=worker_id)
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(ready=ready.set))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises what made it stop
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 20.0,
                     interval: float = 0.05) -> Any:
    """Poll until `check()` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s (last value: {value!r})")


class WorkerProcess:
    """`python -m honcho_grpc.cli worker` with the given environment."""

    def __init__(self, env: dict[str, str]) -> None:
        environ = {**os.environ, "APP_LOG_LEVEL": "INFO", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "worker"],
                                     env=environ, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)

    def wait_started(self, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if "worker" in line and "running" in line:
                return
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}")
        raise RuntimeError("worker did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> str:
        """Stop it; returns what it printed (shown when a test fails)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        assert self.proc.stdout is not None
        return self.proc.stdout.read().decode(errors="replace")


def process_env(dsn: str, workspaces: list[str], **extra: str) -> dict[str, str]:
    import json

    env = {"DB_CONNECTION_URI": dsn, "EMBEDDING_PROVIDER": "fake",
           "QUEUE_WORKSPACES": json.dumps(workspaces), "QUEUE_POLL_SECONDS": "0.5",
           "QUEUE_LEASE_SECONDS": "5", "QUEUE_HEARTBEAT_SECONDS": "0.5",
           "QUEUE_RETRY_BASE_SECONDS": "0.1", "QUEUE_RETRY_MAX_SECONDS": "1",
           # Cards refreshed with every extraction that is not already queueing one.
           "PEER_CARD_REFRESH_SECONDS": "0"}
    return {**env, **extra}


@pytest.fixture
def worker_processes() -> Iterator[list[WorkerProcess]]:
    """Started processes appended here are stopped after the test."""
    procs: list[WorkerProcess] = []
    yield procs
    for p in procs:
        output = p.stop()
        if output.strip():
            print(f"--- worker {p.proc.pid} output ---\n{output}")


async def queue_rows(pool: asyncpg.Pool, workspace_id: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT id, task_type, status, attempts, last_error, usage, work_unit_key, payload "
        "FROM queue WHERE workspace_id = $1 ORDER BY id", workspace_id))


async def open_count(db: Database, workspace_id: str) -> int:
    return int(await db.pool.fetchval(
        "SELECT count(*) FROM queue WHERE workspace_id = $1 "
        "AND status IN ('pending', 'in_progress')", workspace_id))
