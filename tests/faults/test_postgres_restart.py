"""PostgreSQL stopped under a running server, then started again on the same port: while it
is down every call fails fast with UNAVAILABLE and a retry hint (not INTERNAL, not a hang);
once it is back the same server answers again within seconds, its pool reconnected, and a
watcher opened before the restart hears events again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from honcho_grpc_proto.v1 import (
    event_pb2,
    event_pb2_grpc,
    message_pb2,
    search_pb2,
    session_pb2,
    workspace_pb2,
)

from honcho_grpc.db.pool import open_database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import start
from tests.conftest import Stubs, make_settings, make_stubs
from tests.faults.conftest import retry_delay
from tests.helpers import Failure
from tests.postgres_process import PostgresProcess

WS = "restart"


def calls(stubs: Stubs) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One read and one write per kind of database use (lookup, write transaction, page,
    search, context assembly)."""
    def write(text: str) -> Awaitable[Any]:
        return stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=WS, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="ann", content=text)]), timeout=5)

    return {
        "GetWorkspace": lambda: stubs.workspaces.GetWorkspace(
            workspace_pb2.GetWorkspaceRequest(workspace_id=WS), timeout=5),
        "CreateMessages": lambda: write(f"written at {time.monotonic()}"),
        "ListMessages": lambda: stubs.messages.ListMessages(
            message_pb2.ListMessagesRequest(workspace_id=WS, session_id="s"), timeout=5),
        "SearchMessages": lambda: stubs.search.SearchMessages(
            search_pb2.SearchMessagesRequest(workspace_id=WS, query="written"), timeout=5),
        "GetContext": lambda: stubs.sessions.GetContext(
            session_pb2.GetContextRequest(workspace_id=WS, session_id="s", tokens=500),
            timeout=5),
    }


async def test_server_recovers_when_postgres_restarts(
        own_postgres: tuple[PostgresProcess, str]) -> None:
    pg, dsn = own_postgres
    settings = make_settings(dsn, db={"pool_min_size": 2, "pool_max_size": 5})
    database = await open_database(settings)
    running = await start(settings, database, embedder=FakeEmbedder(384), background=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stubs = make_stubs(channel)
    try:
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=WS, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="ann", content="before")]), timeout=5)
        for call in calls(stubs).values():
            await call()
        watch = event_pb2_grpc.EventServiceStub(channel).WatchEvents(
            event_pb2.WatchEventsRequest(workspace_id=WS))
        await watch.initial_metadata()
        in_flight = await write_waiting_on_a_lock(dsn, calls(stubs)["CreateMessages"])

        health = health_pb2_grpc.HealthStub(channel)
        assert await status(health) == SERVING
        pg.stop()
        await refused_as_unavailable("CreateMessages in flight", lambda: in_flight)
        for name, call in calls(stubs).items():
            await refused_as_unavailable(name, call)
        await health_becomes(health, NOT_SERVING, within=6.0)

        pg.start()
        recovered = time.monotonic()
        for name, call in calls(stubs).items():
            await succeeds_within(name, call, 5.0)
        assert time.monotonic() - recovered < 5.0
        await health_becomes(health, SERVING, within=6.0)
        await watcher_hears_again(stubs, watch)
    finally:
        await channel.close()
        await running.stop(grace=1.0)
        await database.close()


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def status(health: health_pb2_grpc.HealthStub, service: str = "") -> int:
    response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(response.status)


async def health_becomes(health: health_pb2_grpc.HealthStub, wanted: int,
                         within: float) -> None:
    """The overall status and a service's reach `wanted` by themselves, within seconds."""
    deadline = time.monotonic() + within
    while (await status(health), await status(health, "honcho.v1.MessageService")) != (
            wanted, wanted):
        assert time.monotonic() < deadline, f"health did not become {wanted} in {within}s"
        await asyncio.sleep(0.2)


async def write_waiting_on_a_lock(dsn: str, write: Callable[[], Awaitable[Any]]
                                  ) -> asyncio.Future[Any]:
    """A write started, and stuck on the session row, when the database goes away (the lock
    is held by a connection that dies with it)."""
    holder = await asyncpg.connect(dsn)
    await holder.execute("BEGIN")
    await holder.execute("SELECT 1 FROM sessions WHERE workspace_id = $1 "
                         "AND session_id = 's' FOR NO KEY UPDATE", WS)
    call = asyncio.ensure_future(write())
    deadline = time.monotonic() + 10
    while True:
        # Activity statistics are a snapshot per transaction unless cleared.
        await holder.execute("SELECT pg_stat_clear_snapshot()")
        if await holder.fetchval("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE wait_event_type = 'Lock'"):
            return call
        assert time.monotonic() < deadline, "the write never reached the lock"
        await asyncio.sleep(0.05)


async def refused_as_unavailable(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    started = time.monotonic()
    try:
        await call()
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (name, err.code(), err.details())
        assert Failure(err).info.reason == "DATABASE_UNAVAILABLE", name
        assert (retry_delay(err) or 0) > 0, f"{name}: UNAVAILABLE without a RetryInfo delay"
    else:
        raise AssertionError(f"{name} succeeded with the database down")
    assert time.monotonic() - started < 3.0, f"{name} took long to fail"


async def succeeds_within(name: str, call: Callable[[], Awaitable[Any]],
                          within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await call()
            return
        except grpc.aio.AioRpcError as err:
            # Only "not yet", never a wrong answer, while the database comes back.
            assert err.code() == grpc.StatusCode.UNAVAILABLE, (name, err.code(), err.details())
            assert time.monotonic() < deadline, f"{name} still failing after {within}s"
            await asyncio.sleep(0.1)


async def watcher_hears_again(stubs: Stubs, watch: Any) -> None:
    """The feed re-LISTENs on its own; events committed before it did are lost (documented),
    so write until one arrives."""
    async def next_event() -> Any:
        return await watch.read()

    reading = asyncio.ensure_future(next_event())
    deadline = time.monotonic() + 15
    while not reading.done():
        assert time.monotonic() < deadline, "the watcher heard nothing after the restart"
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=WS, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="ann", content="after")]), timeout=5)
        await asyncio.wait([reading], timeout=0.3)
    assert reading.result().event.type == event_pb2.EVENT_TYPE_MESSAGES_CREATED
    watch.cancel()
