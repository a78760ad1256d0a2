"""Run a write in one transaction, replaying the first response when `request_id` repeats."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg
from google.protobuf.message import Message as ProtoMessage

from honcho_grpc.domain.transactions import transaction
from honcho_grpc.store import Conn, idempotency

R = TypeVar("R", bound=ProtoMessage)


@dataclass(frozen=True, slots=True)
class Retry(Generic[R]):
    """What makes a write safe to retry: the caller's `request_id` (empty: not retryable),
    the method, the request (its deterministic bytes tell a replay from a reuse of the id)
    and the type of the response, which is stored with the write and read back on replay."""

    request_id: str
    method: str
    request: ProtoMessage
    response_type: type[R]


async def run_write(pool: asyncpg.Pool, workspace_id: str, retry: Retry[R],
                    write: Callable[[Conn], Awaitable[R]]) -> R:
    async with transaction(pool) as conn:
        if not retry.request_id:
            return await write(conn)
        request_id, request = _canonical(retry.request_id, retry.request)
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        stored = await idempotency.lookup(conn, workspace_id, request_id, retry.method, digest)
        if stored is not None:
            return retry.response_type.FromString(stored)
        response = await write(conn)
        await idempotency.remember(conn, workspace_id, request_id, retry.method, digest,
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
