"""Composition root: build the server from its dependencies, run it, shut it down gently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    conclusion_pb2_grpc,
    dialectic_pb2,
    dialectic_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    key_pb2,
    key_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    scope_pb2,
    scope_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    webhook_pb2,
    webhook_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from honcho_grpc.db.embedded import location
from honcho_grpc.db.pool import Database, open_database
from honcho_grpc.domain.embedding import EmbeddingBacklog, warn_of_other_models
from honcho_grpc.http.app import HttpServer
from honcho_grpc.processes import check_port_free
from honcho_grpc.providers.embeddings import Embedder, build_embedder, check_dimensions
from honcho_grpc.providers.llm import TaskRouter
from honcho_grpc.server import listeners, reflection
from honcho_grpc.server.auth import AuthInterceptor
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.errors import ErrorInterceptor
from honcho_grpc.server.health import DatabaseHealth, set_serving
from honcho_grpc.server.servicers.conclusion import ConclusionServicer
from honcho_grpc.server.servicers.dialectic import DialecticServicer
from honcho_grpc.server.servicers.event import EventServicer
from honcho_grpc.server.servicers.key import KeyServicer
from honcho_grpc.server.servicers.message import MessageServicer
from honcho_grpc.server.servicers.peer import PeerServicer
from honcho_grpc.server.servicers.scope import ScopeServicer
from honcho_grpc.server.servicers.search import SearchServicer
from honcho_grpc.server.servicers.session import SessionServicer
from honcho_grpc.server.servicers.webhook import WebhookServicer
from honcho_grpc.server.servicers.workspace import WorkspaceServicer
from honcho_grpc.server.tracing import TracingInterceptor
from honcho_grpc.server.validate import RequestGuard
from honcho_grpc.settings import Settings
from honcho_grpc.store import pages
from honcho_grpc.telemetry import configure as configure_telemetry

log = logging.getLogger(__name__)

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (workspace_pb2, "WorkspaceService"), (peer_pb2, "PeerService"),
        (session_pb2, "SessionService"), (message_pb2, "MessageService"),
        (search_pb2, "SearchService"), (conclusion_pb2, "ConclusionService"),
        (dialectic_pb2, "DialecticService"), (webhook_pb2, "WebhookService"),
        (event_pb2, "EventService"), (key_pb2, "KeyService"), (scope_pb2, "ScopeService"),
    )
)

LIVENESS_SERVICE = "liveness"


def build_server(deps: Deps, interceptors: list[grpc.aio.ServerInterceptor] | None = None
                 ) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """An unstarted server with every service, health and (optionally) reflection."""
    # Later interceptors wrap the handler more tightly: tracing is outermost (its span covers
    # everything and sees the final status); the guard and auth run inside the
    # ErrorInterceptor (their refusals become rich statuses), auth after the guard.
    auth = ([AuthInterceptor(deps.settings.auth, deps.pool)]
            if deps.settings.auth.use_auth else [])
    server = grpc.aio.server(
        interceptors=[TracingInterceptor(), *(interceptors or []), ErrorInterceptor(),
                      RequestGuard(), *auth],
        options=listeners.server_options(deps.settings.server),
        maximum_concurrent_rpcs=deps.settings.server.max_concurrent_rpcs,
    )
    workspace_pb2_grpc.add_WorkspaceServiceServicer_to_server(WorkspaceServicer(deps), server)
    peer_pb2_grpc.add_PeerServiceServicer_to_server(PeerServicer(deps), server)
    session_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(deps), server)
    message_pb2_grpc.add_MessageServiceServicer_to_server(MessageServicer(deps), server)
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(deps), server)
    conclusion_pb2_grpc.add_ConclusionServiceServicer_to_server(ConclusionServicer(deps), server)
    dialectic_pb2_grpc.add_DialecticServiceServicer_to_server(DialecticServicer(deps), server)
    webhook_pb2_grpc.add_WebhookServiceServicer_to_server(WebhookServicer(deps), server)
    event_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(deps), server)
    key_pb2_grpc.add_KeyServiceServicer_to_server(KeyServicer(deps), server)
    scope_pb2_grpc.add_ScopeServiceServicer_to_server(ScopeServicer(deps), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if deps.settings.server.reflection:
        reflection.enable(server, (*SERVICE_NAMES, health.SERVICE_NAME))
    return server, health_servicer


@dataclass
class Running:
    """A started server and what it owns."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    deps: Deps
    port: int
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    _hurry: asyncio.Event = field(default_factory=asyncio.Event)
    http: HttpServer | None = None  # Honcho's HTTP API, when HTTP_ENABLED

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http else None

    async def stop(self, grace: float | None = None, drain: float = 0.0) -> None:
        """NOT_SERVING at once; keep serving for `drain` seconds, so that load balancers and
        meshes move traffic elsewhere before anything is refused; then refuse new calls and
        give in-flight ones `grace` seconds (`hurry()` cuts both short)."""
        await self.health.enter_graceful_shutdown()
        if drain > 0 and not self._hurry.is_set():
            log.info("draining: health is NOT_SERVING, calls are still served for %.1fs", drain)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), drain)
        self.stop_event.set()
        grace = self.deps.settings.server.shutdown_grace_seconds if grace is None else grace
        if self.http is not None:
            await self.http.stop()
        await self.server.stop(0 if self._hurry.is_set() else grace)
        # Background tasks saw stop_event; those still busy are cancelled. One cancelled
        # inside a database call may end with the driver's error instead: logged, since the
        # shutdown itself went well.
        for task in self.tasks:
            task.cancel()
        for ended in await asyncio.gather(*self.tasks, return_exceptions=True):
            if isinstance(ended, Exception):
                log.warning("a background task ended with %r at shutdown", ended)

    async def hurry(self) -> None:
        """End the drain and abort the calls in flight (a second stop signal)."""
        self._hurry.set()
        await self.server.stop(None)


class StopSignals:
    """SIGINT and SIGTERM while serving. The first asks for a graceful stop: SIGTERM (an
    orchestrator's) with the drain period, SIGINT (Ctrl-C in a terminal) without it; a second
    one hurries the stop."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.first: signal.Signals | None = None
        self.running: Running | None = None
        self._hurrying: asyncio.Task[None] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.first is None:
            self.first = sig
            log.info("%s received: stopping (send it again to stop at once)", sig.name)
            self.requested.set()
        elif self.running is not None and self._hurrying is None:
            log.warning("second %s received: stopping now", sig.name)
            self._hurrying = asyncio.create_task(self.running.hurry())

    def drain_seconds(self, settings: Settings) -> float:
        return settings.server.drain_seconds if self.first == signal.SIGTERM else 0.0


async def start(settings: Settings, db: Database, *, embedder: Embedder | None = None,
                background: bool = True) -> Running:
    """Start serving on settings.server.host:port (port 0 picks one). The embedder's real
    output size is checked first: a model that disagrees with the vector columns would
    otherwise fail on the first write or search."""
    embedder = embedder or build_embedder(settings.embedding)
    await check_dimensions(embedder, settings.embedding.dimensions)
    await warn_of_other_models(db.pool, embedder.model_id)
    await pages.load_token_key(db.pool)  # tokens from any server of the deployment work here
    deps = Deps(settings=settings, db=db, embedder=embedder, llm=TaskRouter(settings.llm))
    server, health_servicer = build_server(deps)
    port = listeners.bind(server, settings.server)
    await server.start()
    running = Running(server, health_servicer, deps, port)
    if settings.http.enabled:
        running.http = HttpServer(deps, settings.server.host, settings.http.port)
        running.http.start()
    if settings.server.health_port:
        running.tasks.append(
            await listeners.serve_health_only(settings.server, health_servicer))
    if background and settings.server.embed_in_server:
        backlog = EmbeddingBacklog(db.pool, embedder, settings.embedding.batch_size,
                                   settings.embedding.backlog_poll_seconds)
        running.tasks.append(asyncio.create_task(backlog.run(running.stop_event)))
    await set_serving(health_servicer, SERVICE_NAMES, True)
    # For liveness probes: SERVING while this process answers, whatever the database does
    # (restarting servers cannot bring a database back); NOT_SERVING only in a shutdown.
    await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    monitor = DatabaseHealth(health_servicer, db.pool, SERVICE_NAMES)
    running.tasks.append(asyncio.create_task(monitor.run(running.stop_event)))
    return running


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: database, server, embedding backlog; then shut down."""
    # A port in use is refused before PostgreSQL starts and migrations run.
    check_port_free(settings.server.host, settings.server.port)
    if settings.http.enabled and settings.http.port:
        check_port_free(settings.server.host, settings.http.port, "HTTP_PORT")
    if not settings.db.uri():
        print(f"honcho-grpc: {location(settings.db.data_dir)}", flush=True)
    otel = configure_telemetry(settings.telemetry, "server")
    db = await open_database(settings)
    try:
        running = await start(settings, db)
        log.info("honcho-grpc listening on %s:%d", settings.server.host, running.port)
        print(f"honcho-grpc serving on {settings.server.host}:{running.port}", flush=True)
        if running.http_port is not None:
            log.info("Honcho HTTP API on %s:%d", settings.server.host, running.http_port)
            print(f"Honcho HTTP API on http://{settings.server.host}:{running.http_port}",
                  flush=True)
        signals = StopSignals()
        signals.running = running
        signals.install()
        await signals.requested.wait()
        await running.stop(drain=signals.drain_seconds(settings))
    finally:
        await db.close()
        otel.shutdown()  # flushes the last spans and metric points
