"""SQL for scopes: named sets of a workspace's sessions (migration 0012), their members, and
the sessions a scoped read may see."""

from __future__ import annotations

from collections.abc import Sequence

from honcho_grpc.model import Json, Page, Scope, ScopeMember, Session
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store.filters import Params
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, every, one
from honcho_grpc.store.workspaces import ensure_workspace

SCOPE = columns(Scope)


async def get_or_create_scope(conn: Conn, workspace_id: str, scope_id: str,
                              metadata: Json) -> tuple[Scope, bool]:
    """Creates the workspace too when missing."""
    await ensure_workspace(conn, workspace_id)
    row = await conn.fetchrow(
        "INSERT INTO scopes (workspace_id, scope_id, metadata) VALUES ($1, $2, $3) "
        f"ON CONFLICT DO NOTHING RETURNING {SCOPE}", workspace_id, scope_id, metadata)
    if row is not None:
        return Scope(*row), True
    existing = await get_scope(conn, workspace_id, scope_id)
    assert existing is not None
    return existing, False


async def ensure_scopes(conn: Conn, workspace_id: str, scope_ids: Sequence[str]) -> None:
    """Create the scopes that are missing (the workspace exists)."""
    await conn.execute(
        "INSERT INTO scopes (workspace_id, scope_id) SELECT $1, unnest($2::text[]) "
        "ORDER BY 1 ON CONFLICT DO NOTHING", workspace_id, sorted(set(scope_ids)))


async def get_scope(conn: Executor, workspace_id: str, scope_id: str) -> Scope | None:
    return one(Scope, await conn.fetchrow(
        f"SELECT {SCOPE} FROM scopes WHERE workspace_id = $1 AND scope_id = $2",
        workspace_id, scope_id))


async def set_metadata(conn: Executor, workspace_id: str, scope_id: str,
                       metadata: Json) -> Scope | None:
    return one(Scope, await conn.fetchrow(
        f"UPDATE scopes SET metadata = $3 WHERE workspace_id = $1 AND scope_id = $2 "
        f"RETURNING {SCOPE}", workspace_id, scope_id, metadata))


async def list_scopes(conn: Executor, workspace_id: str, reverse: bool, page_size: int,
                      token: str) -> Page[Scope]:
    params = Params()
    return await keyset_page(
        conn, Scope, select=f"SELECT {columns(Scope, 'sc')} FROM scopes sc",
        where=f"sc.workspace_id = {params.add(workspace_id)}", params=params,
        order=("sc.created_at", "sc.scope_id"), reverse=reverse, page_size=page_size,
        token=token, bound_to=binding("scopes", workspace_id, reverse))


async def missing_sessions(conn: Executor, workspace_id: str,
                           session_ids: Sequence[str]) -> list[str]:
    """Those of `session_ids` that do not exist, in the order given."""
    rows = await conn.fetch(
        "SELECT session_id FROM sessions WHERE workspace_id = $1 "
        "AND session_id = ANY($2::text[])", workspace_id, list(session_ids))
    found = {r["session_id"] for r in rows}
    return [s for s in session_ids if s not in found]


async def add_sessions(conn: Conn, workspace_id: str, scope_id: str,
                       session_ids: Sequence[str]) -> int:
    """Add existing sessions (a member already is one: unchanged); how many joined. The
    sessions are share-locked by the foreign key, so a concurrent delete waits or wins."""
    status: str = await conn.execute(
        "INSERT INTO scope_sessions (workspace_id, scope_id, session_id) "
        "SELECT $1, $2, s FROM unnest($3::text[]) WITH ORDINALITY AS u(s, n) ORDER BY n "
        "ON CONFLICT DO NOTHING", workspace_id, scope_id, list(dict.fromkeys(session_ids)))
    return int(status.split()[-1])


async def add_to_scopes(conn: Conn, workspace_id: str, session_id: str,
                        scope_ids: Sequence[str]) -> None:
    """The session joins every scope of `scope_ids` (they exist)."""
    await conn.execute(
        "INSERT INTO scope_sessions (workspace_id, scope_id, session_id) "
        "SELECT $1, unnest($2::text[]), $3 ON CONFLICT DO NOTHING",
        workspace_id, sorted(set(scope_ids)), session_id)


async def remove_session(conn: Executor, workspace_id: str, scope_id: str,
                         session_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM scope_sessions WHERE workspace_id = $1 AND scope_id = $2 "
        "AND session_id = $3", workspace_id, scope_id, session_id)
    return status != "DELETE 0"


async def list_sessions(conn: Executor, workspace_id: str, scope_id: str, reverse: bool,
                        page_size: int, token: str) -> Page[Session]:
    """The scope's sessions, longest-standing member first (newest first when reversed)."""
    params = Params()
    where = (f"ss.workspace_id = {params.add(workspace_id)} "
             f"AND ss.scope_id = {params.add(scope_id)}")
    return await keyset_page(
        conn, Session,
        select=(f"SELECT {columns(Session, 's')}, ss.added_at FROM scope_sessions ss "
                "JOIN sessions s USING (workspace_id, session_id)"),
        where=where, params=params, order=("ss.added_at", "ss.session_id"), reverse=reverse,
        page_size=page_size, token=token,
        bound_to=binding("scope_sessions", workspace_id, scope_id, reverse))


async def members(conn: Executor, workspace_id: str, scope_id: str) -> list[ScopeMember]:
    """Every member, oldest first, with the explicit conclusions drawn in it that are valid."""
    return every(ScopeMember, await conn.fetch(
        "SELECT ss.session_id, ss.added_at, (SELECT count(*) FROM conclusions c "
        "WHERE c.workspace_id = ss.workspace_id AND c.session_id = ss.session_id "
        "AND c.level = 'explicit' AND c.invalidated_at IS NULL)::int "
        "FROM scope_sessions ss WHERE ss.workspace_id = $1 AND ss.scope_id = $2 "
        "ORDER BY ss.added_at, ss.session_id", workspace_id, scope_id))


async def sessions_of(conn: Executor, workspace_id: str,
                      scope_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the member sessions of any of `scope_ids`, sorted; those of `scope_ids` that do not
    exist), in one statement."""
    rows = await conn.fetch(
        "SELECT u.scope_id, sc.scope_id IS NOT NULL AS found, "
        "coalesce(array_agg(ss.session_id ORDER BY ss.session_id) "
        "FILTER (WHERE ss.session_id IS NOT NULL), '{}') AS sessions "
        "FROM unnest($2::text[]) AS u(scope_id) "
        "LEFT JOIN scopes sc ON sc.workspace_id = $1 AND sc.scope_id = u.scope_id "
        "LEFT JOIN scope_sessions ss ON ss.workspace_id = $1 AND ss.scope_id = sc.scope_id "
        "GROUP BY u.scope_id, sc.scope_id", workspace_id, list(dict.fromkeys(scope_ids)))
    missing = sorted(r["scope_id"] for r in rows if not r["found"])
    sessions = sorted({s for r in rows for s in r["sessions"]})
    return sessions, missing
