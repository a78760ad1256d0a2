"""EventService.WatchEvents: a live feed of what the server and the worker do.

Events are NOTIFYs on channel `honcho_events` (JSON; see honcho_grpc/domain/events.py and
honcho_grpc/store/events.py), sent inside the transaction that makes the
change. One LISTEN connection per server process fans out to every watcher and closes with
the last one. The feed is live, not a log: a watcher hears what is committed while it
watches; events during a database reconnect are lost (the queue itself loses nothing).
Initial metadata is sent once the subscription listens, so a client that awaits it knows
that nothing committed afterwards is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import grpc
from honcho_grpc_proto.v1 import event_pb2 as pb
from honcho_grpc_proto.v1 import event_pb2_grpc as rpc

from honcho_grpc.domain import workspaces
from honcho_grpc.domain.events import EVENTS_CHANNEL
from honcho_grpc.errors import HonchoError, resource_exhausted
from honcho_grpc.server import convert
from honcho_grpc.server.auth import PACKAGE, Authorizer
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.limits import bearer_of
from honcho_grpc.server.validate import checking

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]

TYPES = {
    "messages.created": pb.EVENT_TYPE_MESSAGES_CREATED,
    "conclusions.derived": pb.EVENT_TYPE_CONCLUSIONS_DERIVED,
    "conclusion.invalidated": pb.EVENT_TYPE_CONCLUSION_INVALIDATED,
    "summary.created": pb.EVENT_TYPE_SUMMARY_CREATED,
    "peer_card.updated": pb.EVENT_TYPE_PEER_CARD_UPDATED,
    "queue.drained": pb.EVENT_TYPE_QUEUE_DRAINED,
    "embeddings.drained": pb.EVENT_TYPE_EMBEDDINGS_DRAINED,
}
LISTEN_TIMEOUT_SECONDS = 10.0
BUFFER = 1000  # events a slow watcher may fall behind before its stream is ended
# With auth on, a watch is authorised again this often while it lasts: a key that expires,
# or a peer removed from the session it watches, loses the feed within this time.
RECHECK_SECONDS = 2.0
METHOD = f"/{PACKAGE}.EventService/WatchEvents"


@dataclass(eq=False)
class Watcher:
    workspace_id: str
    session_id: str
    peer_id: str
    types: frozenset[int]
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=BUFFER))
    overflowed: bool = False

    def wants(self, event: dict[str, Any]) -> bool:
        return (event.get("workspace_id") == self.workspace_id
                and (not self.session_id or event.get("session_id") == self.session_id)
                and (not self.peer_id or self.peer_id in (event.get("peers") or [])
                     or event.get("peer_id") == self.peer_id)
                and (not self.types or TYPES.get(event.get("type", ""), 0) in self.types))

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    """One LISTEN connection shared by the watchers of this process."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.watchers: set[Watcher] = set()
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def add(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)
        if self._task is None or self._task.done():
            self.listening.clear()
            self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(self.listening.wait(), LISTEN_TIMEOUT_SECONDS)
        except TimeoutError:
            await self.remove(watcher)
            raise HonchoError("the event feed is unavailable (database unreachable)",
                              reason="EVENT_FEED_UNAVAILABLE",
                              code=grpc.StatusCode.UNAVAILABLE) from None

    async def remove(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)
        if not self.watchers and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _dispatch(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        for watcher in list(self.watchers):
            if watcher.wants(event):
                watcher.offer(event)

    async def _run(self) -> None:
        backoff = 0.2
        while self.watchers:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("event feed: cannot connect (%s)", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            try:
                await self._listen(conn)
                log.warning("event feed: connection lost; reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2))

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Deliver notifications until the connection terminates."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(EVENTS_CHANNEL, self._dispatch)
        self.listening.set()
        await lost.wait()


def to_event(event: dict[str, Any]) -> pb.Event:
    when = None
    with contextlib.suppress(ValueError, TypeError):
        when = convert.ts(datetime.fromisoformat(str(event.get("time"))))
    return pb.Event(type=TYPES.get(event.get("type", ""), pb.EVENT_TYPE_UNSPECIFIED),
                    workspace_id=event.get("workspace_id", ""),
                    session_id=event.get("session_id") or "", peer_id=event.get("peer_id") or "",
                    time=when, data=convert.struct(event.get("data") or {}))


class EventServicer(rpc.EventServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.hub = EventHub(deps.db.dsn)
        auth = deps.settings.auth
        self.authorizer = Authorizer(auth, deps.pool) if auth.use_auth else None

    async def WatchEvents(self, request: pb.WatchEventsRequest,
                          context: Ctx) -> AsyncIterator[pb.WatchEventsResponse]:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id, required=False)
            c.id("peer_id", request.peer_id, required=False)
            for i, t in enumerate(request.types):
                if t not in TYPES.values():
                    c.fail(f"types[{i}]", "is not a known event type")
        await workspaces.get(self.deps.pool, request.workspace_id)
        watcher = Watcher(request.workspace_id, request.session_id, request.peer_id,
                          frozenset(request.types))
        with self.deps.streams.slot("watch", request.workspace_id, bearer_of(context)):
            async for response in self._watch(watcher, request, context):
                yield response

    async def _watch(self, watcher: Watcher, request: pb.WatchEventsRequest,
                     context: Ctx) -> AsyncIterator[pb.WatchEventsResponse]:
        try:
            await self.hub.add(watcher)
            await context.send_initial_metadata(())
            checked = time.monotonic()
            # Without auth nothing is re-checked, and an idle watch need not wake.
            wake_every = RECHECK_SECONDS if self.authorizer is not None else None
            while True:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), wake_every)
                except TimeoutError:
                    event = None
                if self.authorizer is not None and \
                        time.monotonic() - checked >= RECHECK_SECONDS:
                    # The interceptor checked the call once, when it opened.
                    await self.authorizer.check(
                        METHOD, self.authorizer.claims(context.invocation_metadata()), request)
                    checked = time.monotonic()
                if event is not None:
                    yield pb.WatchEventsResponse(event=to_event(event))
                if watcher.overflowed:
                    raise resource_exhausted(
                        f"the watcher fell more than {BUFFER} events behind; reconnect",
                        "EVENT_WATCHER_TOO_SLOW")
        finally:
            await asyncio.shield(self.hub.remove(watcher))
