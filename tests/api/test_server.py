"""Server plumbing: health, reflection, graceful shutdown, message-size limits."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from honcho_grpc_proto.v1 import message_pb2, workspace_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import EmbeddingDimensionError, FakeEmbedder
from honcho_grpc.server.app import Running, start
from honcho_grpc.settings import Settings
from tests.conftest import Stubs, make_settings, make_stubs


async def test_health_serving(server: Running, stubs: Stubs) -> None:
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", "honcho.v1.MessageService"):
        r = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_services(stubs: Stubs) -> None:
    refl = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)

    async def requests():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in refl.ServerReflectionInfo(requests()):
        names = {s.name for s in response.list_services_response.service}
        assert {"honcho.v1.WorkspaceService", "honcho.v1.DialecticService",
                "grpc.health.v1.Health"} <= names
        break


async def test_oversized_request_is_refused(settings: Settings, stubs: Stubs, ws: str) -> None:
    huge = "x" * (settings.server.max_receive_message_bytes + 10)
    req = message_pb2.CreateMessagesRequest(workspace_id=ws, session_id="s", messages=[
        message_pb2.MessageInput(peer_id="a", content=huge)])
    # Refused by the transport before any handler runs, so there are no rich details here.
    try:
        await stubs.messages.CreateMessages(req, timeout=10)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    else:
        raise AssertionError("an oversized request must be refused")


async def test_graceful_shutdown_drains_in_flight(pg_dsn: str, db: Database) -> None:
    """NOT_SERVING first, in-flight calls complete, new calls are refused."""
    settings = make_settings(pg_dsn, server={"shutdown_grace_seconds": 5.0})
    running = await start(settings, db, embedder=FakeEmbedder(384), background=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stubs = make_stubs(channel)
    # Hold a database lock so that one call is still running when shutdown starts.
    async with db.pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE workspaces IN ACCESS EXCLUSIVE MODE")
        call = asyncio.ensure_future(stubs.workspaces.GetOrCreateWorkspace(
            workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id="drain-test"), timeout=20))
        await asyncio.sleep(0.3)
        stopping = asyncio.ensure_future(running.stop())
        await asyncio.sleep(0.3)
        # Load balancers see NOT_SERVING while the call still runs.
        status = await running.health.Check(health_pb2.HealthCheckRequest(), None)
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not call.done()
    result = await call
    assert result.workspace.id == "drain-test"
    await stopping
    try:
        await stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
            workspace_id="drain-test"), timeout=2)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    else:
        raise AssertionError("a stopped server must refuse calls")
    await channel.close()


async def test_background_embedder_drains_on_notify(pg_dsn: str, db: Database, ws: str) -> None:
    """A server's own embedder wakes on NOTIFY and embeds new messages shortly after."""
    settings = make_settings(pg_dsn, embedding={"backlog_poll_seconds": 30.0})
    running = await start(settings, db, embedder=FakeEmbedder(384))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        await make_stubs(channel).messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="a", content="hello there")]))
        for _ in range(100):  # far less than the 30 s poll: the NOTIFY woke it
            if await db.pool.fetchval("SELECT count(*) FROM message_embeddings "
                                      "WHERE workspace_id = $1", ws):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the message was not embedded")
    finally:
        await channel.close()
        await running.stop(grace=1.0)


async def test_start_refuses_an_embedder_of_the_wrong_size(settings: Settings,
                                                           db: Database) -> None:
    wrong = FakeEmbedder(settings.embedding.dimensions + 1)
    with pytest.raises(EmbeddingDimensionError, match="EMBEDDING_DIMENSIONS"):
        await start(settings, db, embedder=wrong, background=False)


async def test_worker_refuses_an_embedder_of_the_wrong_size(settings: Settings) -> None:
    from honcho_grpc.worker.runner import Worker

    worker = Worker(settings, settings.db.uri(),
                    embedder=FakeEmbedder(settings.embedding.dimensions - 1))
    with pytest.raises(EmbeddingDimensionError, match="EMBEDDING_DIMENSIONS"):
        await asyncio.wait_for(worker.run(), 60)
