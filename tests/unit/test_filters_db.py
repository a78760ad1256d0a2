"""Compiled filters executed by a real PostgreSQL (a throwaway embedded server): which rows
each one selects, and that no accepted filter ever makes the database raise."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings

from honcho_grpc.db.embedded import EmbeddedPostgres
from honcho_grpc.store.filters import FilterError, Params, compile_filter
from tests.unit.test_filters import EXTRA, filter_objects

# Shaped like `messages`, plus a float, a bool and an enum-like column (schema EXTRA, alias m).
TABLE = """
CREATE TEMP TABLE filt (
    workspace_id text NOT NULL, message_id text PRIMARY KEY, session_id text, peer_id text,
    seq bigint NOT NULL, token_count integer, metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL, score double precision, active boolean, level text
)"""
ROWS = """
INSERT INTO filt VALUES
 ('w', 'm1', 's1', 'alice', 1, 10,
  '{"age": 30, "tag": "travel", "vip": true, "note": "100% sure"}',
  '2024-01-01T00:00:00Z', 1.5, true, 'explicit'),
 ('w', 'm2', 's1', 'bob', 2, 20, '{"age": "31", "tag": "misc", "vip": false}',
  '2024-01-02T00:00:00Z', 2.5, false, 'deductive'),
 ('w', 'm3', 's2', 'alice', 3, 30,
  '{"age": "thirty", "tag": "1000", "nested": {"k": "v", "j": 1}, "tags": ["a", "b"]}',
  '2024-01-03T00:00:00Z', NULL, NULL, 'inductive'),
 ('w', 'm4', NULL, 'carol', 4, NULL, '{"age": 1e999}',
  '2024-01-04T00:00:00Z', -1, true, 'explicit'),
 ('w', 'm5', 's2', 'dave', 5, 50, '{"age": "1e99999", "tag": "100%_off", "n": "٣"}',
  '2024-01-05T00:00:00Z', 0, false, 'contradiction'),
 ('w', 'm6', 's3', NULL, 6, 60, '{"age": 9.5, "tag": "Travel", "n": " 7", "x": null}',
  '2024-01-06T12:00:00Z', 1e300, NULL, 'deductive')
"""
ALL = ["m1", "m2", "m3", "m4", "m5", "m6"]


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="honcho-filters-pg-"))
    root.chmod(0o755)  # the server may run as an unprivileged user
    pg = EmbeddedPostgres(root / "data", fsync=False)
    try:
        yield pg.start()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    await connection.execute(TABLE)
    await connection.execute(ROWS)
    yield connection
    await connection.close()


async def select(conn: asyncpg.Connection, filters: Any) -> list[str]:
    params = Params(start=1)
    where = compile_filter(filters, EXTRA, params)
    rows = await conn.fetch(
        f"SELECT m.message_id FROM filt m WHERE m.workspace_id = $1 AND {where} "
        "ORDER BY m.seq", "w", *params.values)
    return [r["message_id"] for r in rows]


CASES: list[tuple[Any, list[str]]] = [
    (None, ALL),
    ({}, ALL),
    # plain columns
    ({"peer_id": "alice"}, ["m1", "m3"]),
    ({"peer_id": ["bob", "carol"]}, ["m2", "m4"]),
    ({"peer_id": None}, ["m6"]),
    ({"peer_id": "*"}, ALL),
    ({"peer_id": {"in": []}}, []),
    ({"peer_id": {"in": ["*"]}}, ALL),
    ({"peer_id": {"ne": "alice"}}, ["m2", "m4", "m5", "m6"]),         # NULL is distinct
    ({"session_id": {"ne": None}}, ["m1", "m2", "m3", "m5", "m6"]),
    ({"token_count": {"ne": 10}}, ["m2", "m3", "m4", "m5", "m6"]),
    ({"token_count": {"gte": 20, "lt": 50}}, ["m2", "m3"]),
    ({"token_count": {"gt": 50.0}}, ["m6"]),
    ({"token_count": [10.0, 60]}, ["m1", "m6"]),
    ({"sequence": {"lte": 2}}, ["m1", "m2"]),
    ({"score": {"gt": 1}}, ["m1", "m2", "m6"]),
    ({"score": {"lte": 0}}, ["m4", "m5"]),
    ({"active": True}, ["m1", "m4"]),
    ({"active": {"ne": True}}, ["m2", "m3", "m5", "m6"]),
    ({"level": ["explicit", "contradiction"]}, ["m1", "m4", "m5"]),
    ({"level": {"ne": "deductive"}}, ["m1", "m3", "m4", "m5"]),
    ({"peer_id": {"icontains": "AL"}}, ["m1", "m3"]),
    ({"peer_id": {"contains": "AL"}}, []),                             # contains is exact
    ({"peer_id": {"contains": "al"}}, ["m1", "m3"]),
    ({"peer_id": {"contains": "%"}}, []),                              # % is literal
    ({"peer_id": {"icontains": "_"}}, []),                             # _ is literal
    # timestamps
    ({"created_at": {"gte": "2024-01-02T00:00:00Z", "lt": "2024-01-04"}}, ["m2", "m3"]),
    ({"created_at": {"lt": "2024-01-02T01:00:00+02:00"}}, ["m1"]),    # = 2024-01-01T23:00Z
    ({"created_at": "2024-01-03T00:00:00"}, ["m3"]),                  # naive = UTC
    ({"created_at": "2024-01-06T13:00:00+01:00"}, ["m6"]),
    ({"created_at": {"in": ["2024-01-01", "2024-01-05T00:00:00Z"]}}, ["m1", "m5"]),
    ({"created_at": {"gt": "2024-01-06"}}, ["m6"]),
    # metadata containment and presence
    ({"metadata": {"tag": "travel"}}, ["m1"]),
    ({"metadata": {"tag": "travel", "vip": True}}, ["m1"]),
    ({"metadata": {"nested": {"k": "v"}}}, ["m3"]),
    ({"metadata": {"tags": ["b"]}}, ["m3"]),
    ({"metadata": {"age": 30}}, ["m1"]),                              # JSON 30, not "31"
    ({"metadata": {"x": None}}, ["m6"]),
    ({"metadata": {"tag": "*"}}, ["m1", "m2", "m3", "m5", "m6"]),
    ({"metadata": {"vip": {"ne": None}}}, ["m1", "m2"]),
    # metadata comparisons: numeric when the operand is a number, never an error
    ({"metadata": {"age": {"gte": 30}}}, ["m1", "m2", "m4"]),         # "31" is 31, 1e999
    ({"metadata": {"age": {"lt": 10}}}, ["m6"]),                      # "thirty" is no number
    ({"metadata": {"age": {"gt": 1e300}}}, ["m4"]),
    ({"metadata": {"age": {"gt": 9, "lt": 10}}}, ["m6"]),
    ({"metadata": {"age": {"ne": 30}}}, ["m2", "m3", "m4", "m5", "m6"]),
    ({"metadata": {"n": {"gte": 0}}}, []),                            # "٣", " 7": not numbers
    ({"metadata": {"nested": {"gte": 0}}}, []),                       # an object: no number
    ({"metadata": {"age": {"in": [30, "thirty"]}}}, ["m1", "m3"]),
    ({"metadata": {"age": {"in": [31.0]}}}, ["m2"]),
    ({"metadata": {"age": {"in": []}}}, []),
    ({"metadata": {"age": {"in": ["*"]}}}, ALL),
    ({"metadata": {"vip": {"ne": True}}}, ["m2", "m3", "m4", "m5", "m6"]),
    ({"metadata": {"vip": {"in": [False]}}}, ["m2"]),
    ({"metadata": {"tag": {"gte": "travel"}}}, ["m1"]),
    ({"metadata": {"tag": {"icontains": "TRAV"}}}, ["m1", "m6"]),
    ({"metadata": {"tag": {"contains": "Trav"}}}, ["m6"]),
    ({"metadata": {"tag": {"icontains": "100%"}}}, ["m5"]),           # not "1000"
    ({"metadata": {"tag": {"contains": "%_"}}}, ["m5"]),
    ({"metadata": {"tag": {"contains": "0_"}}}, []),
    ({"metadata": {"age": {"icontains": "3"}}}, ["m1", "m2"]),        # on the JSON text
    # logical
    ({"OR": [{"peer_id": "carol"}, {"metadata": {"tag": "misc"}}]}, ["m2", "m4"]),
    ({"OR": []}, []),
    ({"AND": [{"peer_id": "alice"}, {"sequence": {"gt": 1}}]}, ["m3"]),
    # NOT keeps rows where the condition is unknown (NULL) ...
    ({"NOT": [{"session_id": "s1"}]}, ["m3", "m4", "m5", "m6"]),
    ({"NOT": [{"metadata": {"tag": {"in": ["travel"]}}}]}, ["m2", "m3", "m4", "m5", "m6"]),
    ({"NOT": [{"active": True}]}, ["m2", "m3", "m5", "m6"]),
    # ... and ANDs its elements
    ({"NOT": [{"peer_id": "alice"}, {"peer_id": "bob"}]}, ["m4", "m5", "m6"]),
    ({"OR": [{"AND": [{"OR": [{"NOT": [{"peer_id": "bob"}]}]}]}], "sequence": 2}, []),
    # injection attempts are just odd values
    ({"metadata": {"a'; DROP TABLE filt;--": 1}}, []),
    ({"metadata": {"a'; DROP TABLE filt;--": {"gte": 1}}}, []),
    ({"peer_id": "x' OR '1'='1"}, []),
]


@pytest.mark.parametrize(("filters", "expected"), CASES)
async def test_selects(conn: asyncpg.Connection, filters: Any, expected: list[str]) -> None:
    assert await select(conn, filters) == expected


async def test_table_survives_injection_attempts(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("SELECT count(*) FROM filt") == len(ALL)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(filters=filter_objects(EXTRA))
async def test_random_filters_run_and_not_is_the_complement(conn: asyncpg.Connection,
                                                            filters: Any) -> None:
    """Whatever the compiler accepts, PostgreSQL executes; and `NOT [f]` selects exactly
    the rows `f` does not (IS NOT TRUE semantics)."""
    params = Params(start=1)
    try:
        where = compile_filter(filters, EXTRA, params)
    except FilterError:
        event("rejected")
        return
    assert where
    selected = await select(conn, filters)
    event("selects some" if selected else "selects none")
    try:
        negated = await select(conn, {"NOT": [filters]})
    except FilterError:  # one level too deep, or one condition too many
        return
    assert sorted(set(selected) | set(negated)) == ALL
    assert not set(selected) & set(negated)
