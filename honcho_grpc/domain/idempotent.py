"""Run a write in one transaction, replaying the first response when `request_id` repeats."""

from __future__ import annotations

import hashlib
import uuid
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
        request_id, request = _canonical(request_id, request)
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        stored = await idempotency.lookup(conn, workspace_id, request_id, method, digest)
        if stored is not None:
            return response_type.FromString(stored)
        response = await write(conn)
        await idempotency.remember(conn, workspace_id, request_id, method, digest,
                                   response.SerializeToString(deterministic=True))
        return response


def _canonical(request_id: str, request: ProtoMessage) -> tuple[str, ProtoMessage]:
    """One UUID has many spellings (case, braces, `urn:uuid:`, bare hex): key and digest use
    its canonical form, so every spelling names the same write. The servicers have already
    refused a request_id that is not a UUID."""
    canonical = str(uuid.UUID(request_id))
    if canonical != request_id and "request_id" in request.DESCRIPTOR.fields_by_name:
        copy = type(request)()
        copy.CopyFrom(request)
        copy.request_id = canonical  # type: ignore[attr-defined]
        request = copy
    return canonical, request
