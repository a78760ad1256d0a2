"""WebhookService, EventService.WatchEvents and ScheduleDream, with the worker running."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import asyncpg
import grpc
from honcho_grpc_proto.v1 import (
    event_pb2,
    event_pb2_grpc,
    message_pb2,
    session_pb2,
    webhook_pb2,
    webhook_pb2_grpc,
    workspace_pb2,
)

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.helpers import fails
from tests.worker.conftest import eventually, queue_rows, running_worker, worker_settings
from tests.worker.receiver import receiver

INVALID = grpc.StatusCode.INVALID_ARGUMENT
SECRET = "s3cret"


def webhooks(stubs: Stubs) -> webhook_pb2_grpc.WebhookServiceStub:
    return webhook_pb2_grpc.WebhookServiceStub(stubs.channel)


async def make_workspace(stubs: Stubs, ws: str) -> None:
    await stubs.workspaces.GetOrCreateWorkspace(
        workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws))


async def test_webhook_endpoints_crud_and_url_policy(stubs: Stubs, ws: str) -> None:
    api = webhooks(stubs)
    await fails(api.CreateWebhookEndpoint(webhook_pb2.CreateWebhookEndpointRequest(
        workspace_id=ws, url="https://example.com/h")), grpc.StatusCode.NOT_FOUND)
    await make_workspace(stubs, ws)
    for url in ("http://127.0.0.1:8080/h", "http://localhost/h", "http://10.1.2.3/h",
                "http://169.254.169.254/latest", "http://[::1]/h", "ftp://example.com/h",
                "http://user:pw@example.com/h", "http://192.168.0.1/h"):
        await fails(api.CreateWebhookEndpoint(webhook_pb2.CreateWebhookEndpointRequest(
            workspace_id=ws, url=url)), INVALID, field="url")
    first = await api.CreateWebhookEndpoint(webhook_pb2.CreateWebhookEndpointRequest(
        workspace_id=ws, url="https://93.184.215.14/hook"))
    again = await api.CreateWebhookEndpoint(webhook_pb2.CreateWebhookEndpointRequest(
        workspace_id=ws, url="https://93.184.215.14/hook"))
    assert first.created and not again.created and first.endpoint.id == again.endpoint.id
    listed = await api.ListWebhookEndpoints(webhook_pb2.ListWebhookEndpointsRequest(
        workspace_id=ws))
    assert [e.url for e in listed.endpoints] == ["https://93.184.215.14/hook"]
    await api.DeleteWebhookEndpoint(webhook_pb2.DeleteWebhookEndpointRequest(
        workspace_id=ws, endpoint_id=first.endpoint.id))
    await fails(api.DeleteWebhookEndpoint(webhook_pb2.DeleteWebhookEndpointRequest(
        workspace_id=ws, endpoint_id=first.endpoint.id)), grpc.StatusCode.NOT_FOUND)


async def add_endpoint(db: Database, ws: str, url: str) -> None:
    """Registered directly: the API (rightly) refuses the loopback receiver."""
    await db.pool.execute("INSERT INTO webhook_endpoints (workspace_id, endpoint_id, url) "
                          "VALUES ($1, 'ep1', $2)", ws, url)


async def test_webhooks_are_signed_retried_and_sent_on_drain(stubs: Stubs, db: Database,
                                                             pg_dsn: str, ws: str) -> None:
    await make_workspace(stubs, ws)
    settings = worker_settings(pg_dsn, [ws], webhook={"allow_private": True, "secret": SECRET})
    with receiver() as hook:
        await add_endpoint(db, ws, hook.url)
        hook.answers = [500, 503]  # the first two deliveries fail
        async with running_worker(settings):
            await webhooks(stubs).TestWebhook(webhook_pb2.TestWebhookRequest(workspace_id=ws))
            await eventually(lambda: _received(hook, 1))
            await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id="s",
                messages=[message_pb2.MessageInput(peer_id="ann", content="I am a pilot.")]))
            await eventually(lambda: _received(hook, 2))
    assert hook.attempts == 4
    kinds = []
    for headers, body in hook.received:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-honcho-signature"] == expected
        payload = json.loads(body)
        assert list(payload) == ["data", "timestamp", "type"]
        kinds.append(payload["type"])
        if payload["type"] == "queue.empty":
            assert payload["data"]["queue_type"] == "representation"
            assert payload["data"]["observed"] == "ann"
    assert kinds == ["test.event", "queue.empty"]


async def _received(hook: Any, n: int) -> bool:
    return len(hook.received) >= n


async def test_refused_delivery_parks_without_retry(stubs: Stubs, db: Database, pg_dsn: str,
                                                    ws: str) -> None:
    await make_workspace(stubs, ws)
    await add_endpoint(db, ws, "http://127.0.0.1:9/hook")
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await webhooks(stubs).TestWebhook(webhook_pb2.TestWebhookRequest(workspace_id=ws))
        await eventually(lambda: _first_status(db, ws, "failed"))
    row = (await queue_rows(db.pool, ws))[0]
    assert row["attempts"] == 1 and "refused" in row["last_error"]


async def _first_status(db: Database, ws: str, status: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return bool(rows) and rows[0]["status"] == status


async def watch(stubs: Stubs, request: event_pb2.WatchEventsRequest
                ) -> tuple[Any, asyncio.Queue[event_pb2.Event]]:
    """Start a watch; returns once the server listens (initial metadata)."""
    call = event_pb2_grpc.EventServiceStub(stubs.channel).WatchEvents(request)
    await call.initial_metadata()
    got: asyncio.Queue[event_pb2.Event] = asyncio.Queue()

    async def pump() -> None:
        async for r in call:
            await got.put(r.event)

    task = asyncio.ensure_future(pump())
    call.add_done_callback(lambda _c: task.cancel())
    return call, got


async def next_of(got: asyncio.Queue[event_pb2.Event], kind: int) -> event_pb2.Event:
    async with asyncio.timeout(20):
        while True:
            event = await got.get()
            if event.type == kind:
                return event


async def test_watch_events_streams_the_pipeline(stubs: Stubs, pg_dsn: str, ws: str) -> None:
    await make_workspace(stubs, ws)
    everything, got = await watch(stubs, event_pb2.WatchEventsRequest(workspace_id=ws))
    only_bob, bob = await watch(stubs, event_pb2.WatchEventsRequest(workspace_id=ws,
                                                                    peer_id="bob"))
    drained, drains = await watch(stubs, event_pb2.WatchEventsRequest(
        workspace_id=ws, types=[event_pb2.EVENT_TYPE_QUEUE_DRAINED]))
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s",
        messages=[message_pb2.MessageInput(peer_id="ann", content="I collect stamps.")]))
    created = await next_of(got, event_pb2.EVENT_TYPE_MESSAGES_CREATED)
    assert created.session_id == "s" and created.peer_id == "ann"
    assert created.data["count"] == 1
    async with running_worker(worker_settings(pg_dsn, [ws])):
        derived = await next_of(got, event_pb2.EVENT_TYPE_CONCLUSIONS_DERIVED)
        assert derived.peer_id == "ann" and derived.data["created"] == 1
        card = await next_of(got, event_pb2.EVENT_TYPE_PEER_CARD_UPDATED)
        assert card.peer_id == "ann"
        drain = await next_of(drains, event_pb2.EVENT_TYPE_QUEUE_DRAINED)
        assert drain.data["queue_type"] == "representation"
    assert bob.empty()  # nothing about bob happened
    for call in (everything, only_bob, drained):
        call.cancel()


async def test_watch_events_checks_its_request(stubs: Stubs, ws: str) -> None:
    api = event_pb2_grpc.EventServiceStub(stubs.channel)

    async def first(request: event_pb2.WatchEventsRequest) -> None:
        async for _ in api.WatchEvents(request):
            break

    await fails(first(event_pb2.WatchEventsRequest(workspace_id=ws)), grpc.StatusCode.NOT_FOUND)
    await make_workspace(stubs, ws)
    await fails(first(event_pb2.WatchEventsRequest(workspace_id=ws, types=[99])), INVALID,
                field="types[0]")


async def test_schedule_dream(stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    request = workspace_pb2.ScheduleDreamRequest(workspace_id=ws, observer_id="ann")
    await fails(stubs.workspaces.ScheduleDream(request), grpc.StatusCode.NOT_FOUND)
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="ann", content="I live in Oslo."),
            message_pb2.MessageInput(peer_id="ann", content="I live in Bergen.")]))
    assert (await stubs.workspaces.ScheduleDream(request)).queued
    assert not (await stubs.workspaces.ScheduleDream(request)).queued  # one pending at most
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await eventually(lambda: _dream_done(db, ws, 1))
        # That dream may have run before the conclusions existed; dream again now.
        assert (await stubs.workspaces.ScheduleDream(request)).queued
        await eventually(lambda: _dream_done(db, ws, 2))
    oslo = await db.pool.fetchrow("SELECT invalidated_at, superseded_by FROM conclusions "
                                  "WHERE workspace_id = $1 AND content = 'ann lives in Oslo'", ws)
    assert oslo["invalidated_at"] is not None and oslo["superseded_by"]
    status = await stubs.workspaces.GetQueueStatus(
        workspace_pb2.GetQueueStatusRequest(workspace_id=ws))
    # Two messages, two dreams, and the card refresh the extraction queued unless the first
    # dream was pending then (the dream remakes the card): every row counted, all done.
    rows = await queue_rows(db.pool, ws)
    assert len(rows) in (4, 5) and {r["status"] for r in rows} == {"completed"}
    assert status.totals.completed == len(rows) and status.totals.pending == 0


async def _dream_done(db: Database, ws: str, n: int) -> bool:
    rows = await queue_rows(db.pool, ws)
    return all(r["status"] == "completed" for r in rows) and sum(
        r["task_type"] == "dream" for r in rows) == n


async def test_messages_created_is_one_event_per_stored_batch(stubs: Stubs, db: Database,
                                                             pg_dsn: str, ws: str) -> None:
    """The raw notifications: one per CreateMessages call, import chunk and cloned session,
    each naming its authors, sequence range and first 20 message ids."""
    heard: list[dict[str, Any]] = []
    listener = await asyncpg.connect(pg_dsn)
    await listener.add_listener("honcho_events", lambda *a: heard.append(json.loads(a[3])))
    try:
        many = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s", messages=[
                message_pb2.MessageInput(peer_id=("bob", "alice")[i % 2], content=f"line {i}")
                for i in range(25)]))
        one = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="alice", content="line 25")]))

        async def chunks():  # type: ignore[no-untyped-def]
            for n in (3, 2):
                yield message_pb2.ImportMessagesRequest(
                    workspace_id=ws, session_id="imp", messages=[
                        message_pb2.MessageInput(peer_id="carol", content=f"old {i}")
                        for i in range(n)])

        await stubs.messages.ImportMessages(chunks())
        await stubs.sessions.CloneSession(session_pb2.CloneSessionRequest(
            workspace_id=ws, session_id="s", new_session_id="copy"))
        await eventually(lambda: _count(heard, ws, 5))
    finally:
        await listener.close()
    events = [e for e in heard if e["workspace_id"] == ws and e["type"] == "messages.created"]
    for event in events:
        assert datetime.fromisoformat(event.pop("time")).tzinfo is not None
    imported = [r["message_id"] for r in await db.pool.fetch(
        "SELECT message_id FROM messages WHERE workspace_id = $1 AND session_id = 'imp' "
        "ORDER BY seq", ws)]
    copied = [r["message_id"] for r in await db.pool.fetch(
        "SELECT message_id FROM messages WHERE workspace_id = $1 AND session_id = 'copy' "
        "ORDER BY seq LIMIT 20", ws)]

    def created(session: str, peer: str, peers: list[str], first: int, last: int,
                ids: list[str]) -> dict[str, Any]:
        return {"type": "messages.created", "workspace_id": ws, "session_id": session,
                "peer_id": peer, "peers": peers,
                "data": {"count": last - first + 1, "first_seq": first, "last_seq": last,
                         "message_ids": ids}}

    assert events == [
        created("s", "", ["alice", "bob"], 1, 25, [m.id for m in many.messages][:20]),
        created("s", "alice", ["alice"], 26, 26, [one.messages[0].id]),
        created("imp", "carol", ["carol"], 1, 3, imported[:3]),
        created("imp", "carol", ["carol"], 4, 5, imported[3:]),
        created("copy", "", ["alice", "bob"], 1, 26, copied),
    ]


async def _count(heard: list[dict[str, Any]], ws: str, n: int) -> bool:
    return sum(e["workspace_id"] == ws for e in heard) >= n
