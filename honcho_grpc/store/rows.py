"""Rows to domain values (honcho_grpc/model.py), and the one generic UPDATE.

Statements select a value's columns in its field order (`columns`), so a row becomes a value
by position: `tuple.__new__` copies the row's values at C speed, with no lookup by column
name (see honcho_grpc/model.py for what that saves on a page of messages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from honcho_grpc.model import Json
from honcho_grpc.store import Executor

# What metadata/configuration updates may touch (the field mask was checked against it).
UPDATABLE = frozenset({"metadata", "configuration"})


# A NamedTuple of model.py.
V = TypeVar("V", bound=NamedTuple)
_new = tuple.__new__


def columns(cls: type[NamedTuple], alias: str = "") -> str:
    """`a.x, a.y, ...`: the columns of `cls`'s fields, in order."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + name for name in cls._fields)


def _check(cls: type[NamedTuple], row: Sequence[Any]) -> None:
    # tuple.__new__ takes any length: a statement selecting other columns would otherwise
    # make values that read the wrong ones.
    if len(row) != len(cls._fields):
        raise TypeError(f"a {cls.__name__} row has {len(cls._fields)} columns, not {len(row)}")


def one(cls: type[V], row: Sequence[Any] | None) -> V | None:
    if row is None:
        return None
    _check(cls, row)
    value: V = _new(cls, row)
    return value


def every(cls: type[V], rows: Sequence[Sequence[Any]]) -> list[V]:
    if rows:
        _check(cls, rows[0])
    values: list[V] = [_new(cls, row) for row in rows]
    return values


async def update(conn: Executor, cls: type[V], table: str, key: Mapping[str, str],
                 changes: Json) -> V | None:
    """UPDATE whitelisted columns of one row; the row as it is after, None if absent. No
    changes: the row as it is."""
    assert set(changes) <= UPDATABLE, changes
    where = " AND ".join(f"{col} = ${i}" for i, col in enumerate(key, start=1))
    cols = columns(cls)
    if not changes:
        row = await conn.fetchrow(f"SELECT {cols} FROM {table} WHERE {where}", *key.values())
    else:
        sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=len(key) + 1))
        row = await conn.fetchrow(f"UPDATE {table} SET {sets} WHERE {where} RETURNING {cols}",
                                  *key.values(), *changes.values())
    return one(cls, row)
