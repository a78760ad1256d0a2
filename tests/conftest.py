"""Shared fixtures: one real PostgreSQL (embedded, or DATABASE_URL) and one in-process gRPC
server on port 0 per test session, reached through the generated stubs.

Tests isolate themselves by using fresh workspace ids rather than truncating tables, so they
can share the server and run in any order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from honcho_grpc_proto.v1 import (
    conclusion_pb2_grpc,
    dialectic_pb2_grpc,
    message_pb2_grpc,
    peer_pb2_grpc,
    search_pb2_grpc,
    session_pb2_grpc,
    workspace_pb2_grpc,
)

from honcho_grpc.db.embedded import EmbeddedPostgres
from honcho_grpc.db.pool import Database, open_database
from honcho_grpc.domain.embedding import EmbeddingBacklog
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from honcho_grpc.settings import Settings
from tests.postgres_process import PostgresProcess


def scratch_dir(prefix: str) -> Path:
    """A temp dir the unprivileged database user can reach (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A real PostgreSQL with pgvector: DATABASE_URL if set, else our embedded launcher."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    root = scratch_dir("honcho-test-pg-")
    pg = EmbeddedPostgres(root / "data", fsync=False)
    dsn = pg.start()
    yield dsn
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[PostgresProcess, str]]:
    """A migrated PostgreSQL of this test alone, for tests that stop and start it again on
    the same port (the shared one must not be)."""
    root = scratch_dir("honcho-restart-")
    pg = PostgresProcess(root / "data")
    dsn = pg.start()
    database = await open_database(make_settings(dsn))  # migrations
    await database.close()
    yield pg, dsn
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


def make_settings(dsn: str, **overrides: dict[str, Any]) -> Settings:
    sections: dict[str, dict[str, Any]] = {
        "db": {"connection_uri": dsn, "pool_min_size": 1, "pool_max_size": 20},
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace_seconds": 1.0},
        "http": {"port": 0},  # tests never take the fixed HTTP port (8000)
        "embedding": {"provider": "fake", "backlog_poll_seconds": 0.5},
        # Live batching holds a sender's messages this long (default 20 s): short in tests.
        "queue": {"batch_wait_seconds": 0.3},
        # A card is refreshed at most every 300 s per pair: short in tests.
        "peer_card": {"refresh_seconds": 0.3},
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return Settings(**sections)


@pytest.fixture(scope="session")
def settings(pg_dsn: str) -> Settings:
    return make_settings(pg_dsn)


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(settings)
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def server(settings: Settings, db: Database) -> AsyncIterator[Running]:
    # No background embedder: tests drain the backlog themselves (`drain_backlog`), so that
    # two drainers never race for the same rows.
    running = await start(settings, db, embedder=FakeEmbedder(settings.embedding.dimensions),
                          background=False)
    yield running
    await running.stop(grace=1.0)


async def drain_backlog(db: Database, embedder: Any = None) -> int:
    """Embed everything in the backlog now; returns how many messages were embedded."""
    backlog = EmbeddingBacklog(db.pool, embedder or FakeEmbedder(384))
    total = 0
    while done := await backlog.drain_once():
        total += done
    return total


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    workspaces: workspace_pb2_grpc.WorkspaceServiceStub
    peers: peer_pb2_grpc.PeerServiceStub
    sessions: session_pb2_grpc.SessionServiceStub
    messages: message_pb2_grpc.MessageServiceStub
    search: search_pb2_grpc.SearchServiceStub
    conclusions: conclusion_pb2_grpc.ConclusionServiceStub
    dialectic: dialectic_pb2_grpc.DialecticServiceStub


def make_stubs(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        channel=channel,
        workspaces=workspace_pb2_grpc.WorkspaceServiceStub(channel),
        peers=peer_pb2_grpc.PeerServiceStub(channel),
        sessions=session_pb2_grpc.SessionServiceStub(channel),
        messages=message_pb2_grpc.MessageServiceStub(channel),
        search=search_pb2_grpc.SearchServiceStub(channel),
        conclusions=conclusion_pb2_grpc.ConclusionServiceStub(channel),
        dialectic=dialectic_pb2_grpc.DialecticServiceStub(channel),
    )


@pytest.fixture(scope="session")
async def stubs(server: Running) -> AsyncIterator[Stubs]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield make_stubs(channel)
    await channel.close()


@pytest.fixture
def ws() -> str:
    """A workspace id no other test uses."""
    return f"ws-{uuid.uuid4().hex[:12]}"


ROOT = Path(__file__).resolve().parent.parent
