"""Which database errors tell a caller to retry (UNAVAILABLE, with a delay) and which are
the statement's own: decided by the error's SQLSTATE class, not by a list of the few codes
asyncpg happens to have a class for (a crash mid-statement can surface as any code of its
class)."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from honcho_grpc.db.pool import Database, create_pool, database_unavailable
from honcho_grpc.server.errors import status_for
from honcho_grpc.settings import Settings


def postgres_error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("from the test")


@pytest.mark.parametrize("cls", [
    asyncpg.ConnectionFailureError,        # 08006
    asyncpg.CannotConnectNowError,         # 57P03: starting up, in recovery
    asyncpg.AdminShutdownError,            # 57P01
    asyncpg.CrashShutdownError,            # 57P02
    asyncpg.DatabaseDroppedError,          # 57P04
    asyncpg.InsufficientResourcesError,    # 53000
    asyncpg.DiskFullError,                 # 53100
    asyncpg.OutOfMemoryError,              # 53200
    asyncpg.TooManyConnectionsError,       # 53300
    asyncpg.PostgresSystemError,           # 58000
    asyncpg.PostgresIOError,               # 58030
])
def test_the_server_s_state_is_unavailable(cls: type[asyncpg.PostgresError]) -> None:
    exc = postgres_error(cls)
    assert database_unavailable(exc)
    status = status_for(exc)
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0], (cls, status)


def test_a_code_asyncpg_has_no_class_for_is_judged_by_its_class() -> None:
    exc = asyncpg.PostgresError("terminating connection")
    exc.sqlstate = "57P99"  # a code of the class asyncpg does not know
    assert database_unavailable(exc)


@pytest.mark.parametrize(("cls", "code"), [
    (asyncpg.QueryCanceledError, grpc.StatusCode.DEADLINE_EXCEEDED),  # 57014: its timeout
    (asyncpg.UniqueViolationError, grpc.StatusCode.ALREADY_EXISTS),
    (asyncpg.DataError, grpc.StatusCode.INTERNAL),
    (asyncpg.InternalServerError, grpc.StatusCode.INTERNAL),  # XX000: a bug, not an outage
])
def test_a_statement_s_own_error_is_not_unavailable(cls: type[asyncpg.PostgresError],
                                                    code: grpc.StatusCode) -> None:
    exc = postgres_error(cls)
    assert not database_unavailable(exc)
    assert status_for(exc).code == code.value[0]


def test_connection_losses_outside_postgres_are_unavailable() -> None:
    assert database_unavailable(ConnectionRefusedError())
    assert database_unavailable(asyncpg.ConnectionDoesNotExistError("closed mid-operation"))
    assert not database_unavailable(ValueError("a bug"))


def test_a_connection_stuck_after_a_crash_is_unavailable() -> None:
    # What BEGIN raised on a pooled connection whose last answer PostgreSQL never finished.
    stuck = asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress")
    assert database_unavailable(stuck)
    assert status_for(stuck).code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert not database_unavailable(asyncpg.InternalClientError("some other client bug"))


async def test_a_connection_that_saw_the_database_go_is_not_pooled_again(
        settings: Settings, db: Database) -> None:
    """The block's error says the database went away while asyncpg still thinks the
    connection open (as when PostgreSQL dies mid-answer): the pool closes that connection
    and the next caller gets a fresh one, instead of the same dead one again."""
    pool = await create_pool(db.dsn, settings, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            first = await conn.fetchval("SELECT pg_backend_pid()")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == first  # pooled
        with pytest.raises(asyncpg.ConnectionFailureError):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                raise asyncpg.ConnectionFailureError("the server went away mid-answer")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != first
        with pytest.raises(ValueError):
            async with pool.acquire() as conn:
                second = await conn.fetchval("SELECT pg_backend_pid()")
                raise ValueError("the caller's own error")
        async with pool.acquire() as conn:  # kept: nothing was wrong with the connection
            assert await conn.fetchval("SELECT pg_backend_pid()") == second
    finally:
        await pool.close()
