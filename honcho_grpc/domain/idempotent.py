"""Run a write in one transaction, replaying the first response when `request_id` repeats."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message as ProtoMessage

from honcho_grpc.store import idempotency

R = TypeVar("R", bound=ProtoMessage)


async def run_write(pool: asyncpg.Pool, *, workspace_id: str, request_id: str, method: str,
                    request: ProtoMessage, response_type: type[R],
                    write: Callable[[asyncpg.Connection], Awaitable[R]]) -> R:
    async with pool.acquire() as conn, conn.transaction():
        if not request_id:
            return await write(conn)
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        stored = await idempotency.lookup(conn, workspace_id, request_id, method, digest)
        if stored is not None:
            return response_type.FromString(stored)
        response = await write(conn)
        await idempotency.remember(conn, workspace_id, request_id, method, digest,
                                   response.SerializeToString(deterministic=True))
        return response
