"""Clients cancelling streams mid-way, many times over: StreamChat (with the offline local
provider, and with a provider streaming slowly through the official openai SDK) and
WatchEvents. Afterwards the server holds nothing for them: no RPC task left in its event
loop, no pool connection checked out, no LISTEN connection, no provider stream still open;
and it still serves both streams to the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
from honcho_grpc_proto.v1 import dialectic_pb2 as chat_pb
from honcho_grpc_proto.v1 import event_pb2, event_pb2_grpc, message_pb2, peer_pb2

from honcho_grpc.db.pool import Database, open_database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from tests.conftest import Stubs, make_settings, make_stubs
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Reply
from tests.worker.conftest import eventually

ROUNDS = 3
STREAMS = 10  # of each kind per round
LONG_ANSWER = Reply(chunks=[f"w{i} " for i in range(400)])  # 20 s at 50 ms a chunk


@dataclass
class Served:
    running: Running
    database: Database
    stubs: Stubs
    events: event_pb2_grpc.EventServiceStub
    fake: FakeOpenAI | None  # None: the local provider


@pytest.fixture(params=["local", "openai"])
async def served(request: pytest.FixtureRequest, pg_dsn: str) -> AsyncIterator[Served]:
    """A server with a pool of its own (so its checked-out connections are only ours) and
    either the local provider or an OpenAI-protocol one streaming a chunk every 50 ms."""
    async with FakeOpenAI(chunk_delay=0.05) as fake:
        llm = ({"provider": "openai", "model": "test-model", "openai_base_url": fake.url,
                "max_retries": 0} if request.param == "openai" else {"provider": "local"})
        settings = make_settings(pg_dsn, llm=llm)
        database = await open_database(settings)
        running = await start(settings, database, embedder=FakeEmbedder(384),
                              background=False)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        try:
            yield Served(running, database, make_stubs(channel),
                         event_pb2_grpc.EventServiceStub(channel),
                         fake if request.param == "openai" else None)
        finally:
            await channel.close()
            await running.stop(grace=1.0)
            await database.close()


@dataclass(frozen=True)
class Held:
    """What the server holds: tasks in its event loop (one per RPC in flight), pool
    connections checked out, LISTEN connections it has open."""

    tasks: int
    checked_out: int
    listening: int

    def back_to(self, baseline: Held) -> bool:
        return (self.tasks <= baseline.tasks and self.checked_out == baseline.checked_out
                and self.listening == baseline.listening)


async def held(served: Served, observer: asyncpg.Connection) -> Held:
    pool = served.database.pool
    listening = await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    return Held(tasks=len(asyncio.all_tasks()),
                checked_out=pool.get_size() - pool.get_idle_size(), listening=listening)


def chat_request(ws: str) -> chat_pb.StreamChatRequest:
    # `minimal`: the answer is the provider's stream from the start (no tool round first).
    return chat_pb.StreamChatRequest(query=chat_pb.ChatQuery(
        workspace_id=ws, peer_id="alice", query="What does alice do?",
        reasoning_level=chat_pb.REASONING_LEVEL_MINIMAL))


async def open_streams(served: Served, ws: str) -> list[grpc.aio.Call]:
    """STREAMS chats each past their first delta, STREAMS watchers each subscribed."""
    chats = [served.stubs.dialectic.StreamChat(chat_request(ws)) for _ in range(STREAMS)]
    watchers = [served.events.WatchEvents(event_pb2.WatchEventsRequest(workspace_id=ws))
                for _ in range(STREAMS)]
    firsts = await asyncio.gather(*(c.read() for c in chats))
    assert all(f.HasField("delta") for f in firsts)
    await asyncio.gather(*(w.initial_metadata() for w in watchers))  # listening from here
    return [*chats, *watchers]


async def test_cancelled_streams_leave_nothing_behind(served: Served, pg_dsn: str,
                                                      ws: str) -> None:
    await served.stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(
        workspace_id=ws, peer_id="alice"))
    await read_to_the_end(served, ws)  # warm-up: the SDK client and its connection exist
    if served.fake:
        served.fake.default = LONG_ANSWER  # cancelled long before its end
    # Local answers are short: their streams may be fully sent before the cancel comes.
    live = 2 * STREAMS if served.fake else STREAMS
    observer = await asyncpg.connect(pg_dsn)
    try:
        baseline = await held(served, observer)
        for _ in range(ROUNDS):
            calls = await open_streams(served, ws)
            during = await held(served, observer)
            assert during.tasks >= baseline.tasks + live  # the count sees the RPCs
            assert during.listening == baseline.listening + 1  # one LISTEN for all watchers
            for call in calls:
                call.cancel()
            after = await settled(served, observer, baseline)
            assert after.back_to(baseline), (baseline, after)
    finally:
        await observer.close()
    if served.fake:
        # Every provider stream was closed by the server, none read to its end.
        fake = served.fake
        await eventually(lambda: _hung_up(fake, ROUNDS * STREAMS), within=10)
        assert fake.streams_completed == 1  # the warm-up
        fake.default = Reply("Alice is a nurse.")
        assert await read_to_the_end(served, ws) == "Alice is a nurse."
    else:
        assert "alice" in await read_to_the_end(served, ws)
    await an_event_reaches_a_new_watcher(served, ws)


async def settled(served: Served, observer: asyncpg.Connection, baseline: Held,
                  within: float = 10.0) -> Held:
    """What the server holds once back at the baseline, or after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        now = await held(served, observer)
        if now.back_to(baseline) or asyncio.get_running_loop().time() > deadline:
            return now
        await asyncio.sleep(0.05)


async def _hung_up(fake: FakeOpenAI, count: int) -> bool:
    return fake.streams_hung_up >= count


async def read_to_the_end(served: Served, ws: str) -> str:
    events = [e async for e in served.stubs.dialectic.StreamChat(chat_request(ws))]
    assert events[-1].HasField("completion")
    return "".join(e.delta.content for e in events[:-1])


async def an_event_reaches_a_new_watcher(served: Served, ws: str) -> None:
    watch = served.events.WatchEvents(event_pb2.WatchEventsRequest(workspace_id=ws))
    await watch.initial_metadata()
    await served.stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s",
        messages=[message_pb2.MessageInput(peer_id="alice", content="still here")]))
    event = await asyncio.wait_for(watch.read(), 10)
    assert event.event.type == event_pb2.EVENT_TYPE_MESSAGES_CREATED
    watch.cancel()
