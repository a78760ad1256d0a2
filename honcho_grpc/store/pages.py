"""Keyset pagination with opaque, tamper-evident page tokens.

A token holds the sort key of the last row returned plus a digest of the request parameters it
belongs to (parent, filters, order), signed with a key every server of the deployment shares
(generated once in the database, migration 0008). A token is checked in this order, each step
bounded before the next: its length, its signature, then the exact shape of what it holds; any
failure is INVALID_ARGUMENT (PAGE_TOKEN_INVALID), replaying it with other parameters is
PAGE_TOKEN_MISMATCH. Nothing a caller sends is decompressed or parsed before the signature
holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import asyncpg

from honcho_grpc.errors import InvalidArgument
from honcho_grpc.model import Page
from honcho_grpc.store import Executor
from honcho_grpc.store.filters import Params
from honcho_grpc.store.rows import every

V = TypeVar("V", bound=NamedTuple)

FIELD = "page_token"
MAX_TOKEN_CHARS = 4096
SIGNATURE_BYTES = 16
INT64 = (-(2**63), 2**63 - 1)
MAX_TEXT_CHARS = 1024


@dataclass
class Window:
    """Honcho's offset pagination (the HTTP face's `page`/`size`): the first page of a list
    starts `offset` rows in, and `total` is filled with the number of rows the list holds,
    counted in the database. Set with `offset_window` around one list call; the gRPC face
    never sets it and keeps pure keyset pages."""

    offset: int
    total: int = 0


_WINDOW: ContextVar[Window | None] = ContextVar("page_window", default=None)


@contextmanager
def offset_window(offset: int) -> Iterator[Window]:
    """`with offset_window(40) as w: page = await list_...(size, "")`: the page holds rows
    40..40+size of the list's order, and `w.total` the list's length. One list call only:
    the list functions keep their keyset signatures, the window rides along with the call."""
    window = Window(offset)
    reset = _WINDOW.set(window)
    try:
        yield window
    finally:
        _WINDOW.reset(reset)


class _Key:
    """The signing key: the deployment's (load_token_key) once the server starts; a random
    one until then (tokens of a process that never loaded it only work in that process)."""

    value: bytes = secrets.token_bytes(32)


async def load_token_key(conn: Executor) -> None:
    key = await conn.fetchval("SELECT secret FROM server_secrets WHERE name = 'page_token'")
    if key:
        _Key.value = bytes(key)


def binding(*parts: Any) -> str:
    """Digest of the parameters a token is valid for."""
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    """A sort-key value exactly as _encode_value writes it; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("not a sort key")
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError("integer out of range")
        return value
    if isinstance(value, str) and len(value) <= MAX_TEXT_CHARS:
        return value
    if isinstance(value, dict) and set(value) == {"t"} and isinstance(value["t"], str) \
            and len(value["t"]) <= 64:
        return datetime.fromisoformat(value["t"])
    raise ValueError("not a sort key")


def _sign(body: bytes) -> bytes:
    return hmac.new(_Key.value, body, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def encode_token(position: Sequence[Any], bound_to: str) -> str:
    body = json.dumps([bound_to, [_encode_value(v) for v in position]],
                      separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_sign(body) + body).decode().rstrip("=")


def _invalid() -> InvalidArgument:
    return InvalidArgument.field(FIELD, "is not a valid page token", reason="PAGE_TOKEN_INVALID")


def decode_token(token: str, bound_to: str) -> list[Any]:
    if len(token) > MAX_TOKEN_CHARS:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error) as exc:
        raise _invalid() from exc
    signature, body = raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]
    if not hmac.compare_digest(signature, _sign(body)):
        raise _invalid()
    try:
        bound, position = json.loads(body)
        if not isinstance(bound, str) or not isinstance(position, list):
            raise ValueError("not a token")
        values = [_decode_value(v) for v in position]
    except (ValueError, TypeError) as exc:
        raise _invalid() from exc
    if bound != bound_to:
        raise InvalidArgument.field(
            FIELD, "was issued for a request with different parameters",
            reason="PAGE_TOKEN_MISMATCH",
        )
    return values


async def keyset_page(
    conn: Executor,
    cls: type[V],
    *,
    select: str,
    where: str,
    params: Params,
    order: Sequence[str],
    reverse: bool,
    page_size: int,
    token: str,
    bound_to: str,
) -> Page[V]:
    """One page of `select ... WHERE where` ordered by the key columns `order`, as values of
    `cls` (`select` names its columns in order: rows.columns).

    `order` names columns as they appear in the rows (`r[name]` must be the sort key) and as
    SQL (`alias.name`), e.g. `("p.created_at", "p.peer_id")`. A sort key that is not a field
    of `cls` is selected after its fields.
    """
    key_sql = ", ".join(order)
    clauses = [where]
    window = _WINDOW.get()
    offset = ""
    if window is not None and not token:
        window.total = await conn.fetchval(f"SELECT count(*) FROM ({select} WHERE {where}) AS l",
                                           *params.values)
        offset = f" OFFSET {params.add(window.offset)}"
    if token:
        values = decode_token(token, bound_to)
        if len(values) != len(order):
            raise _invalid()
        holders = ", ".join(params.add(v) for v in values)
        clauses.append(f"({key_sql}) {'<' if reverse else '>'} ({holders})")
    direction = "DESC" if reverse else "ASC"
    order_sql = ", ".join(f"{col} {direction}" for col in order)
    limit = params.add(page_size + 1)
    sql = f"{select} WHERE {' AND '.join(clauses)} ORDER BY {order_sql} LIMIT {limit}{offset}"
    try:
        rows = await conn.fetch(sql, *params.values)
    except asyncpg.DataError as exc:
        if not token:
            raise
        # Only a token signed for another schema of the same key could get here.
        raise _invalid() from exc
    next_token = ""
    if len(rows) > page_size:
        rows = rows[:page_size]
        last = rows[-1]
        next_token = encode_token([last[col.split(".")[-1]] for col in order], bound_to)
    width = len(cls._fields)
    if rows and len(rows[0]) > width:
        # The sort key is not one of the value's fields (a membership's age): selected after
        # them, read for the token above, left out of the values.
        rows = [tuple(r)[:width] for r in rows]
    return Page(every(cls, rows), next_token)
