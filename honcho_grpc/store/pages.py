"""Keyset pagination with opaque page tokens.

A token holds the sort key of the last row returned plus a digest of the request parameters it
belongs to (parent, filters, order); replaying it with other parameters is INVALID_ARGUMENT.
It is compressed and base64url-encoded: opaque to callers, and it carries position only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from honcho_grpc.errors import InvalidArgument
from honcho_grpc.store.filters import Params

FIELD = "page_token"


def binding(*parts: Any) -> str:
    """Digest of the parameters a token is valid for."""
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    return datetime.fromisoformat(value["t"]) if isinstance(value, dict) else value


def encode_token(position: Sequence[Any], bound_to: str) -> str:
    raw = json.dumps([bound_to, [_encode_value(v) for v in position]]).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


def decode_token(token: str, bound_to: str) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        bound, position = json.loads(zlib.decompress(base64.urlsafe_b64decode(padded)))
        values = [_decode_value(v) for v in position]
    except (ValueError, TypeError, zlib.error, binascii.Error) as exc:
        raise InvalidArgument.field(FIELD, "is not a valid page token",
                                    reason="PAGE_TOKEN_INVALID") from exc
    if bound != bound_to:
        raise InvalidArgument.field(
            FIELD, "was issued for a request with different parameters",
            reason="PAGE_TOKEN_MISMATCH",
        )
    return values


@dataclass
class Page:
    rows: list[asyncpg.Record]
    next_token: str


async def keyset_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    select: str,
    where: str,
    params: Params,
    order: Sequence[str],
    reverse: bool,
    page_size: int,
    token: str,
    bound_to: str,
) -> Page:
    """One page of `select ... WHERE where` ordered by the key columns `order`.

    `order` names columns as they appear in the rows (`r[name]` must be the sort key) and as
    SQL (`alias.name`), e.g. `("p.created_at", "p.peer_id")`.
    """
    key_sql = ", ".join(order)
    clauses = [where]
    if token:
        values = decode_token(token, bound_to)
        if len(values) != len(order):
            raise InvalidArgument.field(FIELD, "is not a valid page token",
                                        reason="PAGE_TOKEN_INVALID")
        holders = ", ".join(params.add(v) for v in values)
        clauses.append(f"({key_sql}) {'<' if reverse else '>'} ({holders})")
    direction = "DESC" if reverse else "ASC"
    order_sql = ", ".join(f"{col} {direction}" for col in order)
    limit = params.add(page_size + 1)
    sql = f"{select} WHERE {' AND '.join(clauses)} ORDER BY {order_sql} LIMIT {limit}"
    rows = await conn.fetch(sql, *params.values)
    next_token = ""
    if len(rows) > page_size:
        rows = rows[:page_size]
        last = rows[-1]
        next_token = encode_token([last[col.split(".")[-1]] for col in order], bound_to)
    return Page(rows=list(rows), next_token=next_token)
