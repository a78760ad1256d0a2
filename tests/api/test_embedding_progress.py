"""Embedding progress is visible: GetQueueStatus counts the messages waiting for their
embedding and how long the oldest has waited; WatchEvents says when a workspace's last one is
embedded."""

from __future__ import annotations

import asyncio
from typing import Any

from honcho_grpc_client import AsyncHoncho
from honcho_grpc_proto.v1 import (
    event_pb2,
    event_pb2_grpc,
    message_pb2,
    workspace_pb2,
)

from honcho_grpc.db.pool import Database
from honcho_grpc.domain.embedding import EmbeddingBacklog
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running
from tests.conftest import Stubs, drain_backlog


async def write(stubs: Stubs, ws: str, session: str, peer: str, n: int) -> None:
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id=session, messages=[
            message_pb2.MessageInput(peer_id=peer, content=f"{peer} line {i}")
            for i in range(n)]))


async def status(stubs: Stubs, ws: str, **narrow: str) -> workspace_pb2.GetQueueStatusResponse:
    return await stubs.workspaces.GetQueueStatus(
        workspace_pb2.GetQueueStatusRequest(workspace_id=ws, **narrow))


async def watch_drained(stubs: Stubs, ws: str) -> tuple[Any, asyncio.Queue[event_pb2.Event]]:
    await stubs.workspaces.GetOrCreateWorkspace(
        workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws))
    call = event_pb2_grpc.EventServiceStub(stubs.channel).WatchEvents(
        event_pb2.WatchEventsRequest(workspace_id=ws,
                                     types=[event_pb2.EVENT_TYPE_EMBEDDINGS_DRAINED]))
    await call.initial_metadata()
    got: asyncio.Queue[event_pb2.Event] = asyncio.Queue()

    async def pump() -> None:
        async for r in call:
            await got.put(r.event)

    task = asyncio.ensure_future(pump())
    call.add_done_callback(lambda _c: task.cancel())
    return call, got


async def test_queue_status_reports_the_embedding_backlog(stubs: Stubs, db: Database,
                                                          ws: str) -> None:
    await drain_backlog(db)  # other tests' leftovers
    await write(stubs, ws, "s1", "ann", 3)
    await write(stubs, ws, "s2", "bob", 2)
    await asyncio.sleep(0.05)
    before = await status(stubs, ws)
    assert before.embedding.pending == 5
    assert before.embedding.oldest_age.ToTimedelta().total_seconds() >= 0.05
    assert (await status(stubs, ws, session_id="s1")).embedding.pending == 3
    assert (await status(stubs, ws, sender_id="bob")).embedding.pending == 2
    assert (await status(stubs, ws, session_id="s1", sender_id="bob")).embedding.pending == 0
    await drain_backlog(db)
    after = await status(stubs, ws)
    assert after.embedding.pending == 0
    assert after.embedding.oldest_age.ToTimedelta().total_seconds() == 0


async def test_drained_event_comes_after_the_last_message_is_embedded(
        stubs: Stubs, db: Database, ws: str) -> None:
    await drain_backlog(db)
    call, got = await watch_drained(stubs, ws)
    await write(stubs, ws, "s1", "ann", 5)
    small = EmbeddingBacklog(db.pool, FakeEmbedder(384), batch_size=2)
    assert await small.drain_once() == 2
    assert await small.drain_once() == 2
    await asyncio.sleep(0.3)
    assert got.empty()  # one message still waits
    assert (await status(stubs, ws)).embedding.pending == 1
    assert await small.drain_once() == 1
    async with asyncio.timeout(10):
        event = await got.get()
    assert event.type == event_pb2.EVENT_TYPE_EMBEDDINGS_DRAINED
    assert event.workspace_id == ws
    assert (await status(stubs, ws)).embedding.pending == 0
    call.cancel()


async def test_drained_event_is_per_workspace(stubs: Stubs, db: Database, ws: str) -> None:
    """Draining another workspace says nothing about this one."""
    await drain_backlog(db)
    other = f"{ws}-other"
    call, got = await watch_drained(stubs, ws)
    await write(stubs, other, "s", "ann", 1)
    await write(stubs, ws, "s", "ann", 1)
    await db.pool.execute(  # this workspace's message becomes due only later
        "UPDATE embedding_backlog SET run_after = now() + interval '1 hour' "
        "WHERE workspace_id = $1", ws)
    assert await drain_backlog(db) == 1
    await asyncio.sleep(0.3)
    assert got.empty()
    await db.pool.execute("UPDATE embedding_backlog SET run_after = now() "
                          "WHERE workspace_id = $1", ws)
    assert await drain_backlog(db) == 1
    async with asyncio.timeout(10):
        assert (await got.get()).workspace_id == ws
    call.cancel()


async def test_the_python_client_reports_the_backlog(server: Running, stubs: Stubs,
                                                     db: Database, ws: str) -> None:
    await drain_backlog(db)
    await write(stubs, ws, "s", "ann", 2)
    events: list[str] = []
    async with AsyncHoncho(address=f"127.0.0.1:{server.port}", workspace_id=ws) as honcho:
        status = await honcho.queue_status()
        assert status.embedding_pending == 2 and status.embedding_oldest_age > 0
        async with honcho.events(types=["embeddings_drained"]) as feed:
            await feed.ready()
            await drain_backlog(db)
            async with asyncio.timeout(10):
                async for event in feed:
                    events.append(event.type)
                    break
        assert (await honcho.queue_status()).embedding_pending == 0
    assert events == ["embeddings_drained"]
