"""A chat call's Question (domain/dialectic.py answers it), as both faces pose it: the asking
peer, the peer asked about (the asker itself when none is named: its omniscient view), an
optional session, the reasoning level and an optional JSON Schema for the answer. The parties
must exist; Honcho's HTTP API creates the asking peer on first use, the gRPC face does not
(GetOrCreatePeer comes first there), so the caller says which."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from honcho_grpc.domain import peers, scopes
from honcho_grpc.domain.dialectic import LEVELS, Question, require_parties
from honcho_grpc.domain.response_format import as_object_schema
from honcho_grpc.errors import InvalidArgument

MAX_QUERY_CHARS = 10_000
DEFAULT_LEVEL = "low"


async def pose(pool: asyncpg.Pool, workspace_id: str, asker: str, query: str, *,
               target: str = "", session_id: str = "", level: str = DEFAULT_LEVEL,
               response_format: dict[str, Any] | None = None,
               create_asker: bool = False, scope_ids: Sequence[str] = (),
               session_ids: Sequence[str] | None = None) -> Question:
    """The Question, once its parties (and its scopes) are known to exist (NOT_FOUND else).
    `scope_ids` / `session_ids` confine it to those sessions (domain/scopes.py). Ids, the
    query's length, the schema and which options exclude which are the adapters' to check,
    under their own field names."""
    if level not in LEVELS:
        raise InvalidArgument.field("reasoning_level", "is not a known reasoning level")
    if create_asker:
        await peers.get_or_create(pool, workspace_id, asker, {}, {})
    q = Question(workspace_id=workspace_id, observer_id=asker, target_id=target or asker,
                 query=query, session_id=session_id or None, level=level,
                 response_format=as_object_schema(response_format),
                 sessions=await scopes.boundary(pool, workspace_id, scopes=scope_ids,
                                                sessions=session_ids))
    await require_parties(pool, q)
    return q
