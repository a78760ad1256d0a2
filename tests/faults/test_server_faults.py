"""The server under faults, with real processes and a real PostgreSQL:

- SIGTERM under load: every write the server acknowledged is in the database exactly once,
  the process exits cleanly within its grace period, and calls refused meanwhile are
  UNAVAILABLE or CANCELLED, never INTERNAL or UNKNOWN;
- clients cancelling streams (StreamChat, WatchEvents) leave no task, pooled connection or
  LISTEN connection behind;
- a PostgreSQL restart under a running server: calls fail fast with UNAVAILABLE (and
  RetryInfo) while it is down, and succeed again once it is back, without a server restart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from honcho_grpc.db.embedded import EmbeddedPostgres, free_port
from honcho_grpc.db.pool import Database, open_database
from honcho_grpc.gen.honcho.v1 import (
    dialectic_pb2,
    event_pb2,
    event_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    workspace_pb2,
)
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from tests.conftest import ROOT, Stubs, make_settings, make_stubs, scratch_dir
from tests.helpers import fails

REFUSED_DURING_SHUTDOWN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


def serve_process(dsn: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DB_CONNECTION_URI": dsn, "SERVER_PORT": str(port),
           "EMBEDDING_PROVIDER": "fake", "SERVER_EMBED_IN_SERVER": "false",
           "SERVER_SHUTDOWN_GRACE_SECONDS": "5", "APP_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "serve"], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_serving(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if "serving on" in line:
            return
        assert line or proc.poll() is None, "the server exited"
    raise AssertionError("the server did not start")


async def test_sigterm_under_load_loses_no_acknowledged_write(pg_dsn: str, db: Database,
                                                              ws: str) -> None:
    port = free_port()
    proc = serve_process(pg_dsn, port)
    acknowledged: list[str] = []
    refused: list[grpc.StatusCode] = []
    try:
        await asyncio.to_thread(wait_serving, proc)

        async def writer(n: int, stub: message_pb2_grpc.MessageServiceStub) -> None:
            for i in range(10_000):
                contents = [f"{ws} writer {n} batch {i} message {j}" for j in range(20)]
                try:
                    await stub.CreateMessages(message_pb2.CreateMessagesRequest(
                        workspace_id=ws, session_id=f"s{n % 2}", messages=[
                            message_pb2.MessageInput(peer_id=f"p{n}", content=c)
                            for c in contents]), timeout=10)
                except grpc.aio.AioRpcError as err:
                    refused.append(err.code())
                    return
                acknowledged.extend(contents)

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = message_pb2_grpc.MessageServiceStub(channel)
            writers = [asyncio.create_task(writer(n, stub)) for n in range(6)]
            while len(acknowledged) < 600:  # well under way
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*writers), 30)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert refused and set(refused) <= REFUSED_DURING_SHUTDOWN, refused
    stored = await db.pool.fetch(
        "SELECT content, count(*) AS n FROM messages WHERE workspace_id = $1 GROUP BY 1", ws)
    copies = {r["content"]: r["n"] for r in stored}
    assert all(copies.get(c) == 1 for c in acknowledged), "an acknowledged write is missing"
    # Whole batches only: a batch is in the database entirely or not at all.
    batches = {c.rsplit(" message ", 1)[0] for c in copies}
    assert len(copies) == 20 * len(batches)


async def _listeners(db: Database) -> int:
    return int(await db.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' "
        "AND state = 'idle' AND datname = current_database()"))


async def eventually(condition, within: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_cancelled_streams_free_their_resources(server: Running, stubs: Stubs,
                                                      db: Database, ws: str) -> None:
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="ann", content=f"I like hiking trail {i}.")
            for i in range(30)]))
    events = event_pb2_grpc.EventServiceStub(stubs.channel)
    tasks_before = len(asyncio.all_tasks())
    listeners_before = await _listeners(db)
    for _ in range(20):
        chat = stubs.dialectic.StreamChat(dialectic_pb2.StreamChatRequest(
            query=dialectic_pb2.ChatQuery(workspace_id=ws, peer_id="ann",
                                          query="which hiking trail does ann like?")))
        await chat.read()
        chat.cancel()
        watch = events.WatchEvents(event_pb2.WatchEventsRequest(workspace_id=ws))
        await watch.initial_metadata()  # subscribed: the server holds a LISTEN connection
        assert await _listeners(db) >= 1
        watch.cancel()

    async def freed() -> bool:
        return (len(asyncio.all_tasks()) <= tasks_before
                and db.pool.get_idle_size() == db.pool.get_size()
                and await _listeners(db) <= listeners_before)

    await eventually(freed)
    # ... and the server still answers.
    got = await stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id=ws))
    assert got.workspace.id == ws


def _retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo")


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of this test alone (the shared one must not be restarted)."""
    root = scratch_dir("honcho-pg-restart-")
    pg = EmbeddedPostgres(root / "data", fsync=False)
    dsn = pg.start()
    yield pg, dsn
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


async def test_server_recovers_when_postgres_restarts(
        own_postgres: tuple[EmbeddedPostgres, str]) -> None:
    pg, dsn = own_postgres
    settings = make_settings(dsn)
    db = await open_database(settings)
    running = await start(settings, db, embedder=FakeEmbedder(settings.embedding.dimensions),
                          background=False)
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    request = workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stubs = make_stubs(channel)
            await stubs.workspaces.GetOrCreateWorkspace(request)
            await asyncio.to_thread(pg.stop)
            started = time.monotonic()
            error = await fails(stubs.workspaces.GetOrCreateWorkspace(request, timeout=20),
                                grpc.StatusCode.UNAVAILABLE, reason="DATABASE_UNAVAILABLE")
            assert time.monotonic() - started < 10, "a down database must fail fast"
            assert _retry_delay(error.error) > 0
            await asyncio.to_thread(pg.start)

            async def answers() -> bool:
                try:
                    reply = await stubs.workspaces.GetOrCreateWorkspace(request, timeout=5)
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                    return False
                return reply.workspace.id == ws and not reply.created

            await eventually(answers, within=20)
    finally:
        await running.stop(grace=1)
        await db.close()
