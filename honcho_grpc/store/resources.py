"""SQL for workspaces, peers and sessions (get-or-create, get, list, update, delete)."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from honcho_grpc.store import backlog, search_stats
from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import Page, binding, keyset_page

Conn: TypeAlias = asyncpg.Connection


async def ensure_workspace(conn: Conn, workspace_id: str) -> None:
    """Create the workspace with defaults if missing (writes may auto-create parents)."""
    await conn.execute(
        "INSERT INTO workspaces (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING", workspace_id
    )


async def ensure_peers(conn: Conn, workspace_id: str, peer_ids: list[str]) -> None:
    await conn.execute(
        "INSERT INTO peers (workspace_id, peer_id) SELECT $1, unnest($2::text[]) "
        "ON CONFLICT DO NOTHING", workspace_id, sorted(set(peer_ids)),
    )


async def ensure_session(conn: Conn, workspace_id: str, session_id: str) -> None:
    await conn.execute(
        "INSERT INTO sessions (workspace_id, session_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        workspace_id, session_id,
    )


# -- workspaces ---------------------------------------------------------------------------

async def get_or_create_workspace(conn: Conn, workspace_id: str, metadata: dict[str, Any],
                                  configuration: dict[str, Any]) -> tuple[asyncpg.Record, bool]:
    row = await conn.fetchrow(
        "INSERT INTO workspaces (workspace_id, metadata, configuration) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING *", workspace_id, metadata, configuration,
    )
    if row is not None:
        return row, True
    existing = await get_workspace(conn, workspace_id)
    assert existing is not None  # rows are never deleted and re-created within one statement
    return existing, False


async def get_workspace(conn: Conn | asyncpg.Pool, workspace_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM workspaces WHERE workspace_id = $1", workspace_id)


async def list_workspaces(conn: Conn | asyncpg.Pool, filters: dict[str, Any] | None,
                          reverse: bool, page_size: int, token: str) -> Page:
    params = f.Params()
    where = f.compile_filter(filters, f.workspace_filters("w"), params)
    return await keyset_page(
        conn, select="SELECT w.* FROM workspaces w", where=where, params=params,
        order=("w.created_at", "w.workspace_id"), reverse=reverse, page_size=page_size,
        token=token, bound_to=binding("workspaces", filters, reverse),
    )


async def update_workspace(conn: Conn, workspace_id: str,
                           changes: dict[str, Any]) -> asyncpg.Record | None:
    return await _update(conn, "workspaces", {"workspace_id": workspace_id}, changes)


async def delete_workspace(conn: Conn, workspace_id: str) -> bool:
    status: str = await conn.execute("DELETE FROM workspaces WHERE workspace_id = $1", workspace_id)
    # Queue rows have no foreign key (migration 0005). After the row delete, which waited for
    # any writer holding the workspace, so that what that writer enqueued is seen here.
    await conn.execute("DELETE FROM queue WHERE workspace_id = $1", workspace_id)
    return status != "DELETE 0"


# -- peers --------------------------------------------------------------------------------

async def get_or_create_peer(conn: Conn, workspace_id: str, peer_id: str,
                             metadata: dict[str, Any],
                             configuration: dict[str, Any]) -> tuple[asyncpg.Record, bool]:
    await ensure_workspace(conn, workspace_id)
    row = await conn.fetchrow(
        "INSERT INTO peers (workspace_id, peer_id, metadata, configuration) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING *",
        workspace_id, peer_id, metadata, configuration,
    )
    if row is not None:
        return row, True
    existing = await get_peer(conn, workspace_id, peer_id)
    assert existing is not None
    return existing, False


async def get_peer(conn: Conn | asyncpg.Pool, workspace_id: str,
                   peer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM peers WHERE workspace_id = $1 AND peer_id = $2", workspace_id, peer_id
    )


async def list_peers(conn: Conn | asyncpg.Pool, workspace_id: str,
                     filters: dict[str, Any] | None, reverse: bool, page_size: int,
                     token: str) -> Page:
    params = f.Params()
    where = f"p.workspace_id = {params.add(workspace_id)} AND " + f.compile_filter(
        filters, f.peer_filters("p"), params)
    return await keyset_page(
        conn, select="SELECT p.* FROM peers p", where=where, params=params,
        order=("p.created_at", "p.peer_id"), reverse=reverse, page_size=page_size, token=token,
        bound_to=binding("peers", workspace_id, filters, reverse),
    )


async def update_peer(conn: Conn, workspace_id: str, peer_id: str,
                      changes: dict[str, Any]) -> asyncpg.Record | None:
    return await _update(conn, "peers", {"workspace_id": workspace_id, "peer_id": peer_id},
                         changes)


async def delete_peer(conn: Conn, workspace_id: str, peer_id: str) -> bool:
    """Delete a peer: its messages, memberships, cards and every conclusion by or about it
    go with it (foreign keys), as do queued jobs about it."""
    await conn.execute(
        "DELETE FROM queue WHERE workspace_id = $1 AND (payload->>'observed' = $2 "
        "OR payload->>'observer' = $2)", workspace_id, peer_id,
    )
    await search_stats.uncount_where(conn, workspace_id, "m.peer_id = $2", peer_id)
    await backlog.forget_where(conn, workspace_id, "m.peer_id = $2", peer_id)
    status: str = await conn.execute(
        "DELETE FROM peers WHERE workspace_id = $1 AND peer_id = $2", workspace_id, peer_id
    )
    return status != "DELETE 0"


async def list_peer_sessions(conn: Conn | asyncpg.Pool, workspace_id: str, peer_id: str,
                             filters: dict[str, Any] | None, reverse: bool, page_size: int,
                             token: str) -> Page:
    params = f.Params()
    ws, peer = params.add(workspace_id), params.add(peer_id)
    where = (f"s.workspace_id = {ws} AND EXISTS (SELECT 1 FROM session_peers sp WHERE "
             f"sp.workspace_id = {ws} AND sp.session_id = s.session_id AND sp.peer_id = {peer} "
             f"AND sp.left_at IS NULL) AND "
             + f.compile_filter(filters, f.session_filters("s"), params))
    return await keyset_page(
        conn, select="SELECT s.* FROM sessions s", where=where, params=params,
        order=("s.created_at", "s.session_id"), reverse=reverse, page_size=page_size,
        token=token, bound_to=binding("peer_sessions", workspace_id, peer_id, filters, reverse),
    )


# -- sessions -----------------------------------------------------------------------------

async def get_or_create_session(conn: Conn, workspace_id: str, session_id: str,
                                metadata: dict[str, Any],
                                configuration: dict[str, Any]) -> tuple[asyncpg.Record, bool]:
    await ensure_workspace(conn, workspace_id)
    row = await conn.fetchrow(
        "INSERT INTO sessions (workspace_id, session_id, metadata, configuration) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING *",
        workspace_id, session_id, metadata, configuration,
    )
    if row is not None:
        return row, True
    existing = await get_session(conn, workspace_id, session_id)
    assert existing is not None
    return existing, False


async def get_session(conn: Conn | asyncpg.Pool, workspace_id: str,
                      session_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM sessions WHERE workspace_id = $1 AND session_id = $2",
        workspace_id, session_id,
    )


async def list_sessions(conn: Conn | asyncpg.Pool, workspace_id: str,
                        filters: dict[str, Any] | None, reverse: bool, page_size: int,
                        token: str) -> Page:
    params = f.Params()
    where = f"s.workspace_id = {params.add(workspace_id)} AND " + f.compile_filter(
        filters, f.session_filters("s"), params)
    return await keyset_page(
        conn, select="SELECT s.* FROM sessions s", where=where, params=params,
        order=("s.created_at", "s.session_id"), reverse=reverse, page_size=page_size,
        token=token, bound_to=binding("sessions", workspace_id, filters, reverse),
    )


async def update_session(conn: Conn, workspace_id: str, session_id: str,
                         changes: dict[str, Any]) -> asyncpg.Record | None:
    return await _update(conn, "sessions",
                         {"workspace_id": workspace_id, "session_id": session_id}, changes)


async def delete_session(conn: Conn, workspace_id: str, session_id: str) -> bool:
    """Messages, embeddings, memberships, summaries and conclusions derived in the session go
    with it (foreign keys), its queue items explicitly; conclusions built on those go too."""
    await delete_conclusions_derived_from(conn, workspace_id, session_id=session_id)
    await search_stats.uncount_where(conn, workspace_id, "m.session_id = $2", session_id)
    await backlog.forget_where(conn, workspace_id, "m.session_id = $2", session_id)
    status: str = await conn.execute(
        "DELETE FROM sessions WHERE workspace_id = $1 AND session_id = $2",
        workspace_id, session_id,
    )
    # After the session row delete, which waited for writers holding the row (they lock it to
    # take sequence numbers), so their queued jobs are visible to this statement.
    await conn.execute("DELETE FROM queue WHERE workspace_id = $1 AND session_id = $2",
                       workspace_id, session_id)
    return status != "DELETE 0"


async def delete_conclusions_derived_from(conn: Conn, workspace_id: str, *,
                                          session_id: str | None = None,
                                          message_ids: list[str] | None = None) -> int:
    """Delete the conclusions sourced from a session or from messages, and, transitively,
    every conclusion that has one of them as a premise."""
    if session_id is not None:
        seed = "c.session_id = $2"
        arg: Any = session_id
    else:
        seed = "c.source_message_ids && $2::text[]"
        arg = message_ids or []
    status: str = await conn.execute(
        f"""
        WITH RECURSIVE doomed(conclusion_id) AS (
            SELECT c.conclusion_id FROM conclusions c WHERE c.workspace_id = $1 AND {seed}
            UNION
            SELECT c.conclusion_id FROM conclusions c JOIN doomed d
              ON c.premise_ids @> ARRAY[d.conclusion_id]
            WHERE c.workspace_id = $1
        )
        DELETE FROM conclusions c USING doomed d
        WHERE c.workspace_id = $1 AND c.conclusion_id = d.conclusion_id
        """,
        workspace_id, arg,
    )
    return int(status.split()[-1])


# -- shared -------------------------------------------------------------------------------

UPDATABLE = frozenset({"metadata", "configuration"})


async def _update(conn: Conn, table: str, key: dict[str, str],
                  changes: dict[str, Any]) -> asyncpg.Record | None:
    """UPDATE whitelisted columns; `changes` keys were checked against the field mask."""
    assert set(changes) <= UPDATABLE, changes
    where = " AND ".join(f"{col} = ${i}" for i, col in enumerate(key, start=1))
    if not changes:
        return await conn.fetchrow(f"SELECT * FROM {table} WHERE {where}", *key.values())
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=len(key) + 1))
    return await conn.fetchrow(
        f"UPDATE {table} SET {sets} WHERE {where} RETURNING *", *key.values(), *changes.values()
    )


async def lock_peers(conn: Conn, workspace_id: str, peer_ids: list[str]) -> set[str]:
    """Those of the peers that exist, share-locked until the transaction ends, so that a
    concurrent DeletePeer waits for what is written about them and then cascades over it."""
    rows = await conn.fetch(
        "SELECT peer_id FROM peers WHERE workspace_id = $1 AND peer_id = ANY($2::text[]) "
        "FOR KEY SHARE", workspace_id, peer_ids)
    return {r["peer_id"] for r in rows}
