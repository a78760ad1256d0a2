"""Which database errors tell a caller to retry (UNAVAILABLE, with a delay) and which are
the statement's own: decided by the error's SQLSTATE class, not by a list of the few codes
asyncpg happens to have a class for (a crash mid-statement can surface as any code of its
class)."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from honcho_grpc.db.pool import database_unavailable
from honcho_grpc.server.errors import status_for


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
