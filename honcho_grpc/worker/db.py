"""The worker's connections: psycopg 3 with an async pool for the queue transport
(honcho_grpc/store/queue/transport.py), and where to find the server's database. Its domain
reads and writes use the store's asyncpg pool (honcho_grpc/db/pool.py create_pool)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from honcho_grpc import telemetry
from honcho_grpc.settings import Settings
from honcho_grpc.store.queue.transport import Conn, Pool

__all__ = ["Conn", "NoDatabaseError", "Pool", "connect", "embedded_dsn", "make_pool",
           "resolve_dsn"]


class NoDatabaseError(RuntimeError):
    """Neither a configured database nor a running embedded one."""


def embedded_dsn(data_dir: Path) -> str | None:
    """The DSN of the embedded PostgreSQL a server started under `data_dir`, if it runs."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def resolve_dsn(settings: Settings) -> str:
    """DB_CONNECTION_URI / DATABASE_URL, else the embedded server of `honcho-grpc serve`."""
    dsn = settings.db.uri() or embedded_dsn(settings.db.data_dir.resolve())
    if not dsn:
        raise NoDatabaseError(
            "no database: set DB_CONNECTION_URI, or start `honcho-grpc serve` (which starts the "
            f"embedded PostgreSQL under {settings.db.data_dir}) before the worker, or run "
            "`honcho-grpc up` to start both")
    return dsn


async def _configure(conn: Conn) -> None:
    telemetry.instrument_psycopg(conn)


# How long one chain of reconnection attempts lasts, and how long a caller waits for a
# connection. psycopg_pool doubles the pause between attempts (1, 2, 4, 8 s...) until the
# chain gives up, so a long chain leaves a worker idle for up to the last pause after the
# database is back (31 s, then 63 s). Short chains keep that pause under 4 s: a caller that
# times out retries, and its request starts a new chain.
RECONNECT_CHAIN_SECONDS = 5.0
WAIT_FOR_CONNECTION_SECONDS = 5.0


def make_pool(dsn: str, max_size: int, *, name: str = "honcho-worker") -> Pool:
    """An unopened pool of autocommit connections returning dict rows. Connections are not
    probed before use (a round trip each time): after a server restart the first use of a
    dead connection fails, the pool drops it, and the queue retries what failed."""
    kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
    return AsyncConnectionPool(
        dsn, connection_class=AsyncConnection[DictRow], kwargs=kwargs, min_size=1,
        max_size=max_size, open=False, configure=_configure, name=name,
        reconnect_timeout=RECONNECT_CHAIN_SECONDS, timeout=WAIT_FOR_CONNECTION_SECONDS,
    )


async def connect(dsn: str) -> Conn:
    """A dedicated autocommit connection (for LISTEN)."""
    return await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)
