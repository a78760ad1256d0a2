"""Every pooled connection busy: calls are refused at once (UNAVAILABLE, SERVER_BUSY, with a
retry delay) instead of queueing until their deadline, health says NOT_SERVING meanwhile, and
both recover by themselves once connections are free."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc
from grpc_health.v1 import health_pb2_grpc
from honcho_grpc_proto.v1 import workspace_pb2

from honcho_grpc.db.pool import Database, open_database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import start
from tests.conftest import make_settings, make_stubs
from tests.faults.conftest import retry_delay
from tests.faults.test_postgres_restart import NOT_SERVING, SERVING, health_becomes
from tests.helpers import Failure


async def test_exhausted_pool_answers_fast_and_recovers(pg_dsn: str) -> None:
    settings = make_settings(pg_dsn, db={"pool_min_size": 1, "pool_max_size": 2,
                                         "pool_acquire_timeout_seconds": 0.5})
    database: Database = await open_database(settings)
    running = await start(settings, database, embedder=FakeEmbedder(384), background=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stubs = make_stubs(channel)
    health = health_pb2_grpc.HealthStub(channel)
    held = contextlib.AsyncExitStack()
    try:
        request = workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id="busy")
        await stubs.workspaces.GetOrCreateWorkspace(request, timeout=5)
        for _ in range(2):  # a tenant's idle streams, or slow work, holding every connection
            await held.enter_async_context(database.pool.acquire(timeout=10))
        started = time.monotonic()
        try:
            await stubs.workspaces.GetOrCreateWorkspace(request, timeout=30)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
            assert Failure(err).info.reason == "SERVER_BUSY"
            assert (retry_delay(err) or 0) > 0
        else:
            raise AssertionError("a call succeeded with every connection held")
        assert time.monotonic() - started < 2.0
        await health_becomes(health, NOT_SERVING, within=6.0)

        await held.aclose()
        await health_becomes(health, SERVING, within=6.0)
        await stubs.workspaces.GetOrCreateWorkspace(request, timeout=5)
    finally:
        await held.aclose()
        await channel.close()
        await running.stop(grace=1.0)
        await database.close()
        await asyncio.sleep(0)
