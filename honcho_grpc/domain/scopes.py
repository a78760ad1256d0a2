"""Scopes: named sets of a workspace's sessions, and the visibility boundary they draw.

A read made through a scope (chat, representation, context, search) sees only what was said
in the scope's member sessions: their messages, and the explicit conclusions drawn in them
(derived ones rest on premises from any session, so a boundary leaves them out, as a
single-session read does). A list of scopes reads the union of their sessions; a session
allowlist names the sessions directly. The boundary is applied where the rows are read
(store/filters.py compiles it), so nothing is copied: a session that joins or leaves a scope
counts at once, and `status` reports every member as settled.

A session joins scopes when it is created (`Honcho.session(..., scopes=[...])`, the scopes
created when missing) in the transaction that gets or creates it, or later by AddSessions.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import HonchoError, InvalidArgument, not_found
from honcho_grpc.model import Json, Page, Scope, ScopeMember, Session
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store import scopes as store

MAX_SESSIONS_PER_ADD = 100     # sessions one AddSessions names
MAX_SCOPES_PER_READ = 100      # scopes one read (or one session's creation) names
MAX_ALLOWLIST = 1000           # sessions one allowlist names
RESERVED_PREFIX = "scope."     # Honcho stores scopes as peers so named; ids never carry it

# The sessions a read may see: None for no boundary; an empty set admits nothing.
Boundary = frozenset[str] | None


def scope_missing(workspace_id: str, scope_id: str) -> HonchoError:
    return not_found("scope", workspaceId=workspace_id, scopeId=scope_id)


async def require(db: Executor, workspace_id: str, scope_id: str) -> Scope:
    found = await store.get_scope(db, workspace_id, scope_id)
    if found is None:
        raise scope_missing(workspace_id, scope_id)
    return found


async def get_or_create(pool: asyncpg.Pool, workspace_id: str, scope_id: str,
                        metadata: Json | None, *, replace: bool = True
                        ) -> tuple[Scope, bool]:
    """Creates the workspace too. An existing scope is returned with `metadata` applied when
    it is given and `replace` (Honcho's get-or-create), as it is otherwise (the gRPC face's
    GetOrCreate* contract)."""
    async with transaction(pool) as conn:
        found, created = await store.get_or_create_scope(conn, workspace_id, scope_id,
                                                         metadata or {})
        if not created and replace and metadata is not None and metadata != found.metadata:
            found = await store.set_metadata(conn, workspace_id, scope_id, metadata) or found
    return found, created


async def get(pool: asyncpg.Pool, workspace_id: str, scope_id: str) -> Scope:
    return await require(pool, workspace_id, scope_id)


async def list_scopes(pool: asyncpg.Pool, workspace_id: str, reverse: bool, page_size: int,
                      token: str) -> Page[Scope]:
    return await store.list_scopes(pool, workspace_id, reverse, page_size, token)


async def add_sessions(pool: asyncpg.Pool, workspace_id: str, scope_id: str,
                       session_ids: Sequence[str]) -> int:
    """Every session must exist (NOT_FOUND naming the first missing one, nothing added);
    a member already is unchanged. How many joined."""
    if not session_ids:
        raise InvalidArgument.field("session_ids", "is required")
    if len(session_ids) > MAX_SESSIONS_PER_ADD:
        raise InvalidArgument.field("session_ids",
                                    f"names more than {MAX_SESSIONS_PER_ADD} sessions")
    async with transaction(pool) as conn:
        await require(conn, workspace_id, scope_id)
        missing = await store.missing_sessions(conn, workspace_id, session_ids)
        if missing:
            raise not_found("session", workspaceId=workspace_id, sessionId=missing[0])
        return await store.add_sessions(conn, workspace_id, scope_id, session_ids)


async def remove_session(pool: asyncpg.Pool, workspace_id: str, scope_id: str,
                         session_id: str) -> bool:
    """NOT_FOUND when the scope is missing; a session that is not a member: nothing to do
    (False)."""
    async with transaction(pool) as conn:
        await require(conn, workspace_id, scope_id)
        return await store.remove_session(conn, workspace_id, scope_id, session_id)


async def list_sessions(pool: asyncpg.Pool, workspace_id: str, scope_id: str, reverse: bool,
                        page_size: int, token: str) -> Page[Session]:
    await require(pool, workspace_id, scope_id)
    return await store.list_sessions(pool, workspace_id, scope_id, reverse, page_size, token)


async def status(pool: asyncpg.Pool, workspace_id: str, scope_id: str) -> list[ScopeMember]:
    await require(pool, workspace_id, scope_id)
    return await store.members(pool, workspace_id, scope_id)


async def join(conn: Conn, workspace_id: str, session_id: str,
               scope_ids: Sequence[str]) -> None:
    """In the caller's transaction (the session's get-or-create): the scopes are created
    when missing and the session joins them."""
    if not scope_ids:
        return
    await store.ensure_scopes(conn, workspace_id, scope_ids)
    await store.add_to_scopes(conn, workspace_id, session_id, scope_ids)


async def boundary(db: Executor, workspace_id: str, *, scopes: Sequence[str] = (),
                   sessions: Sequence[str] | None = None) -> Boundary:
    """The sessions a read may see: the union of the scopes' members (NOT_FOUND for a scope
    that does not exist), or the allowlist as given (sessions that do not exist match
    nothing); None when neither is given. The adapters check the two are not both given."""
    if scopes:
        found, missing = await store.sessions_of(db, workspace_id, scopes)
        if missing:
            raise scope_missing(workspace_id, missing[0])
        return frozenset(found)
    if sessions is not None:
        return frozenset(sessions)
    return None
