"""Connection lifetimes for L4 load balancers: after SERVER_MAX_CONNECTION_AGE_SECONDS the
server sends GOAWAY (read here from the raw HTTP/2 frames with the h2 library) and a gRPC
client reconnects without a failed call; SERVER_KEEPALIVE_* make the server ping a quiet
connection and drop one whose peer does not answer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from honcho_grpc_proto.v1 import (
    event_pb2,
    event_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from tests.conftest import make_settings

AGE = 1.0  # seconds; grpc adds +-10% jitter


async def serve(pg_dsn: str, db: Database, **server: float) -> Running:
    settings = make_settings(pg_dsn, server=server)
    return await start(settings, db, embedder=FakeEmbedder(384), background=False)


@pytest.fixture
async def short_lived(pg_dsn: str, db: Database) -> AsyncIterator[Running]:
    running = await serve(pg_dsn, db, max_connection_age_seconds=AGE,
                          max_connection_age_grace_seconds=1.0)
    yield running
    await running.stop(grace=0.5)


@pytest.fixture
async def aged_with_default_grace(pg_dsn: str, db: Database) -> AsyncIterator[Running]:
    running = await serve(pg_dsn, db, max_connection_age_seconds=AGE)
    yield running
    await running.stop(grace=0.5)


@pytest.fixture
async def impatient(pg_dsn: str, db: Database) -> AsyncIterator[Running]:
    """Pings after 0.5 s of quiet, gives 0.5 s for the answer; no connection age."""
    running = await serve(pg_dsn, db, max_connection_age_seconds=0,
                          keepalive_time_seconds=0.5, keepalive_timeout_seconds=0.5)
    yield running
    await running.stop(grace=0.5)


def frames(buffer: bytearray) -> Iterator[bytes]:
    """Whole HTTP/2 frames taken off the front of `buffer` (a 9-byte header whose first 3
    bytes are the payload's length): h2 is fed one frame at a time, so that it stops at a
    GOAWAY instead of failing on the frames a server sends after it."""
    while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
        size = 9 + int.from_bytes(buffer[:3], "big")
        frame = bytes(buffer[:size])
        del buffer[:size]
        yield frame


def raw_http2(port: int, seconds: float, *, answer_pings: bool) -> list[tuple[float, object]]:
    """Open a bare HTTP/2 connection (no gRPC call), read frames for `seconds` or until the
    server closes; the events the server caused, with when they came."""
    events: list[tuple[float, object]] = []
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    started = time.monotonic()
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(conn.data_to_send())
        while (left := seconds - (time.monotonic() - started)) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                events.append((time.monotonic() - started, "closed"))
                break
            buffer += data
            for frame in frames(buffer):
                received = conn.receive_data(frame)
                events += [(time.monotonic() - started, event) for event in received]
                if any(isinstance(e, h2.events.ConnectionTerminated) for e in received):
                    return events  # what follows a GOAWAY (its ping, the close) is not ours
            # h2 queues the ACKs of SETTINGS and PINGs. Without answer_pings only the settings
            # are acknowledged, so that only the pings go unanswered.
            pending = conn.data_to_send()
            pinged = any(isinstance(e, h2.events.PingReceived) for _, e in events)
            if pending and (answer_pings or not pinged):
                sock.sendall(pending)
    return events


async def test_goaway_after_the_configured_age(short_lived: Running) -> None:
    events = await asyncio.to_thread(raw_http2, short_lived.port, AGE * 3, answer_pings=True)
    goaways = [(t, e) for t, e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaways, events
    when, first = goaways[0]
    assert AGE * 0.85 <= when <= AGE * 1.6, events
    assert isinstance(first, h2.events.ConnectionTerminated)
    assert first.error_code == 0  # NO_ERROR: a graceful goodbye, not a failure


async def test_clients_reconnect_transparently(short_lived: Running) -> None:
    """Calls every 100 ms over three ages: none fails, and the channel connected again
    (READY more than once)."""
    ready = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{short_lived.port}") as channel:
        async def watch() -> None:
            nonlocal ready
            state = channel.get_state(try_to_connect=True)
            while True:
                if state == grpc.ChannelConnectivity.READY:
                    ready += 1
                await channel.wait_for_state_change(state)
                state = channel.get_state()

        watcher = asyncio.create_task(watch())
        stub = health_pb2_grpc.HealthStub(channel)
        calls = 0
        deadline = time.monotonic() + AGE * 3.2
        while time.monotonic() < deadline:
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            calls += 1
            await asyncio.sleep(0.1)
        watcher.cancel()
    assert calls >= 20
    assert ready >= 2, f"the channel was READY {ready} time(s) in {AGE * 3.2:.1f} s"


async def test_a_stream_outlives_the_age_of_its_connection(
        aged_with_default_grace: Running, ws: str) -> None:
    """With the default grace (no limit) a WatchEvents stream opened before the GOAWAY keeps
    its connection and hears what a later call, sent on a new connection, writes."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{aged_with_default_grace.port}") as channel:
        await workspace_pb2_grpc.WorkspaceServiceStub(channel).GetOrCreateWorkspace(
            workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws), timeout=10)
        watch = event_pb2_grpc.EventServiceStub(channel).WatchEvents(
            event_pb2.WatchEventsRequest(workspace_id=ws))
        await watch.initial_metadata()  # subscribed
        await asyncio.sleep(AGE * 2.5)  # the connection was told to go away meanwhile
        await message_pb2_grpc.MessageServiceStub(channel).CreateMessages(
            message_pb2.CreateMessagesRequest(workspace_id=ws, session_id="s", messages=[
                message_pb2.MessageInput(peer_id="alice", content="still listening?")]),
            timeout=10)
        async with asyncio.timeout(10):
            answer = await watch.read()
        assert answer.event.type == event_pb2.EVENT_TYPE_MESSAGES_CREATED
        watch.cancel()


async def test_a_peer_that_does_not_answer_pings_is_dropped(impatient: Running) -> None:
    events = await asyncio.to_thread(raw_http2, impatient.port, 5.0, answer_pings=False)
    pings = [t for t, e in events if isinstance(e, h2.events.PingReceived)]
    ends = [t for t, e in events if e == "closed" or isinstance(e, h2.events.ConnectionTerminated)]
    assert pings and pings[0] <= 1.5, events
    assert ends and ends[0] <= pings[0] + 2.0, events


async def test_a_peer_that_answers_pings_is_kept(impatient: Running) -> None:
    events = await asyncio.to_thread(raw_http2, impatient.port, 3.0, answer_pings=True)
    pings = [t for t, e in events if isinstance(e, h2.events.PingReceived)]
    assert len(pings) >= 2, events
    assert not [e for _, e in events
                if e == "closed" or isinstance(e, h2.events.ConnectionTerminated)], events


def test_defaults_rebalance_within_minutes() -> None:
    from honcho_grpc.server.listeners import server_options
    from honcho_grpc.settings import ServerSettings

    options = dict(server_options(ServerSettings()))
    assert options["grpc.max_connection_age_ms"] == 300_000
    assert "grpc.max_connection_age_grace_ms" not in options  # streams are never cut
    assert options["grpc.keepalive_time_ms"] == 60_000
    assert options["grpc.keepalive_timeout_ms"] == 20_000
    assert options["grpc.http2.ping_timeout_ms"] == 20_000
    never = dict(server_options(ServerSettings(max_connection_age_seconds=0)))
    assert "grpc.max_connection_age_ms" not in never
