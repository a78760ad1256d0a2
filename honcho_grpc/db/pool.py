"""Opening the database: embedded or external server, version checks, migrations, the pool."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import Any

import asyncpg
import asyncpg.pool
from pgvector.asyncpg import register_vector

from honcho_grpc.db.embedded import EmbeddedPostgres
from honcho_grpc.errors import server_busy
from honcho_grpc.settings import Settings
from honcho_grpc.store import schema

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 7)
MIGRATION_LOCK = 7_424_301  # advisory lock id: one migrator at a time across processes


# What a lost or restarting database raises through asyncpg (as opposed to a statement's
# own error): worth waiting out, never the caller's fault.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
)
# The SQLSTATE classes of the server's state rather than the statement's: connection
# exceptions (08), insufficient resources (53), operator intervention (57: shutdown, crash,
# recovery) and system errors (58: I/O). asyncpg has a class for only some of their codes;
# a crash mid-statement can surface as any of them. A cancelled statement (57014) is the
# statement's own timeout.
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
QUERY_CANCELED = "57014"


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is down, restarting or out of resources."""
    if isinstance(exc, UNAVAILABLE) or _stuck_connection(exc):
        return True
    state = getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    return isinstance(state, str) and state != QUERY_CANCELED \
        and state[:2] in UNAVAILABLE_SQLSTATE_CLASSES


def _stuck_connection(exc: BaseException) -> bool:
    """A connection whose last statement died with the server mid-answer can go back to the
    pool before asyncpg has seen its socket close, its protocol still waiting for the rest
    of that answer; the next statement on it fails with this client-side error (seen on
    BEGIN while PostgreSQL restarted under `up`). asyncpg has no class for it, only the
    message."""
    return isinstance(exc, asyncpg.InternalClientError) \
        and "cannot switch to state" in str(exc)


class DatabaseConfigError(RuntimeError):
    """The configured database cannot be used (missing pgvector, wrong dimension...)."""


def _encode_json(value: Any) -> str:
    # Strings are taken as already-serialised JSON: the filter compiler passes `$n::jsonb` text.
    if isinstance(value, str):
        return value
    # Most metadata and configurations are empty: a message write encodes three per message.
    if type(value) is dict and not value:
        return "{}"
    return json.dumps(value)


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without asyncpg's reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL): that is one more round trip per acquire, a tenth of a short call's
    time. Nothing here leaves session state behind: advisory locks are transaction-level,
    settings transaction-local (`set_config(..., true)`), the one LISTEN on a pool connection
    is removed before release, and asyncpg still rolls back an open transaction itself."""

    def get_reset_query(self) -> str:
        return ""


class _AcquireContext(asyncpg.pool.PoolAcquireContext):  # type: ignore[misc]
    """Closes, rather than returns to the pool, a connection whose block ended on a lost or
    restarting database: it may not know yet that it is dead, and the next caller to get it
    would fail on it again."""

    __slots__ = ()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and self.connection is not None and database_unavailable(exc):
            self.connection.terminate()
        await super().__aexit__(exc_type, exc, tb)


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool whose every acquire (explicit, or inside pool.fetch/execute) waits at most
    `acquire_timeout` seconds: when every connection is busy a call is refused at once with a
    retry hint, rather than queueing until its own deadline while health says SERVING. A
    connection that saw the database go away is closed, not pooled again."""

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> _AcquireContext:
        return _AcquireContext(self, timeout)

    async def _acquire(self, timeout: float | None) -> asyncpg.Connection:  # noqa: ASYNC109
        # asyncpg's one acquire path (PoolAcquireContext and the pool's query shortcuts).
        try:
            return await super()._acquire(self.acquire_timeout if timeout is None else timeout)
        except TimeoutError:
            raise server_busy("every database connection of this server is busy") from None


# Session defaults of every pooled connection. Vector searches here are filtered (a
# workspace, a session, an observer/observed pair), and a plain HNSW scan filters only the
# `ef_search` nearest rows of the whole index: a pair owning 1% of the conclusions would get
# almost none of its own back. pgvector 0.8's iterative scans keep going until enough rows
# pass. Set once per connection (placeholders until pgvector loads, which picks them up)
# rather than per query: a round trip less on every search.
HNSW_EF_SEARCH = 50
VECTOR_SCAN_SETTINGS = {"hnsw.iterative_scan": "relaxed_order",
                        "hnsw.ef_search": str(HNSW_EF_SEARCH)}


def _encode_jsonb(value: Any) -> bytes:
    # jsonb's binary form is a version byte, then the JSON text.
    return b"\x01" + _encode_json(value).encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in binary form: imports copy messages in with binary COPY, which needs it.
    await conn.set_type_codec("jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb,
                              schema="pg_catalog", format="binary")
    await conn.set_type_codec("json", encoder=_encode_json, decoder=json.loads,
                              schema="pg_catalog")
    await register_vector(conn)


@dataclass
class Database:
    """The pool plus, when we started it, the embedded server behind it."""

    pool: asyncpg.Pool
    dsn: str
    embedded: EmbeddedPostgres | None = None

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            self.embedded.stop()


async def create_pool(dsn: str, settings: Settings, *, min_size: int, max_size: int,
                      acquire_timeout: float | None = None) -> asyncpg.Pool:
    """The asyncpg pool every store function runs on, in the server and in the worker (which
    connects to the server's database and never starts one). With `acquire_timeout`, a busy
    pool refuses (SERVER_BUSY) rather than queueing: the server's choice, not the worker's,
    whose pool is sized above its concurrency."""
    pool = BoundedPool(
        dsn, min_size=min_size, max_size=max_size,
        max_queries=50_000, max_inactive_connection_lifetime=300.0, connect=None,
        setup=None, init=init_connection, reset=None, loop=None,
        connection_class=PooledConnection, record_class=asyncpg.Record,
        command_timeout=settings.db.command_timeout_seconds,
        server_settings=VECTOR_SCAN_SETTINGS,
    )
    pool.acquire_timeout = acquire_timeout
    await pool
    return pool


def start_embedded(settings: Settings) -> EmbeddedPostgres:
    pg = EmbeddedPostgres(settings.db.data_dir, port=settings.db.embedded_port,
                          fsync=settings.db.fsync)
    pg.start()
    return pg


async def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Connect (starting the embedded server if no URI is configured), migrate, return a pool."""
    embedded = None
    dsn = settings.db.uri()
    if not dsn:
        embedded = start_embedded(settings)
        dsn = embedded.dsn
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await check_pgvector(conn)
            if migrate:
                await apply_migrations(conn)
            await check_embedding_dimensions(conn, settings.embedding.dimensions)
        finally:
            await conn.close()
        pool = await create_pool(dsn, settings, min_size=settings.db.pool_min_size,
                                 max_size=settings.db.pool_max_size,
                                 acquire_timeout=settings.db.pool_acquire_timeout_seconds)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    return Database(pool=pool, dsn=dsn, embedded=embedded)


async def check_pgvector(conn: asyncpg.Connection) -> None:
    version = await schema.pgvector_version(conn)
    if version is None:
        raise DatabaseConfigError(
            "the database server has no pgvector extension; install pgvector >= 0.7 or unset "
            "DB_CONNECTION_URI to use the embedded PostgreSQL"
        )
    parts = tuple(int(p) for p in version.split(".")[:2])
    if parts < MIN_PGVECTOR:
        raise DatabaseConfigError(f"pgvector {version} is too old; honcho-grpc needs >= 0.7")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every bundled migration, in order."""
    found = []
    for entry in resources.files("honcho_grpc.db.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("applied migration %s", name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied


async def check_embedding_dimensions(conn: asyncpg.Connection, dims: int) -> None:
    """The vector columns must match the configured embedding size.

    An empty database is adapted silently; one holding vectors of another size is refused
    with the command that converts it (`honcho-grpc migrate --reset-embeddings`).
    """
    mismatched = [
        (table, column) for table, column in schema.EMBEDDING_COLUMNS
        if await schema.vector_dimensions(conn, table, column) != dims
    ]
    if not mismatched:
        return
    if await schema.stored_vectors(conn):
        current = await schema.vector_dimensions(conn, *mismatched[0])
        raise DatabaseConfigError(
            f"the database stores {current}-dimensional embeddings but EMBEDDING_DIMENSIONS is "
            f"{dims}; run `honcho-grpc migrate --reset-embeddings` to re-embed everything"
        )
    await schema.reset_embeddings(conn, dims)
