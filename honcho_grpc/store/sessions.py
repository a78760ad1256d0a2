"""SQL for sessions: get-or-create, get, list, update, delete, and the copy a clone starts
from."""

from __future__ import annotations

from honcho_grpc.model import Json, Page, Session
from honcho_grpc.store import Conn, Executor, backlog, search_stats
from honcho_grpc.store import filters as f
from honcho_grpc.store.conclusions import delete_conclusions_derived_from
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, one, update
from honcho_grpc.store.workspaces import ensure_workspace

SESSION = columns(Session)


async def get_or_create_session(conn: Conn, workspace_id: str, session_id: str, metadata: Json,
                                configuration: Json) -> tuple[Session, bool]:
    await ensure_workspace(conn, workspace_id)
    row = await conn.fetchrow(
        "INSERT INTO sessions (workspace_id, session_id, metadata, configuration) "
        f"VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING {SESSION}",
        workspace_id, session_id, metadata, configuration,
    )
    if row is not None:
        return Session(*row), True
    existing = await get_session(conn, workspace_id, session_id)
    assert existing is not None
    return existing, False


async def get_session(conn: Executor, workspace_id: str, session_id: str) -> Session | None:
    return one(Session, await conn.fetchrow(
        f"SELECT {SESSION} FROM sessions WHERE workspace_id = $1 AND session_id = $2",
        workspace_id, session_id))


async def list_sessions(conn: Executor, workspace_id: str, filters: Json | None, reverse: bool,
                        page_size: int, token: str) -> Page[Session]:
    params = f.Params()
    where = f"s.workspace_id = {params.add(workspace_id)} AND " + f.compile_filter(
        filters, f.session_filters("s"), params)
    return await keyset_page(
        conn, Session, select=f"SELECT {columns(Session, 's')} FROM sessions s", where=where,
        params=params, order=("s.created_at", "s.session_id"), reverse=reverse,
        page_size=page_size, token=token,
        bound_to=binding("sessions", workspace_id, filters, reverse),
    )


async def update_session(conn: Executor, workspace_id: str, session_id: str,
                         changes: Json) -> Session | None:
    return await update(conn, Session, "sessions",
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


async def copy_session(conn: Conn, workspace_id: str, source_id: str,
                       target_id: str) -> Session | None:
    """A new session `target_id` with the source's metadata and configuration; None when
    `target_id` exists already."""
    return one(Session, await conn.fetchrow(
        "INSERT INTO sessions (workspace_id, session_id, metadata, configuration) "
        "SELECT workspace_id, $3, metadata, configuration FROM sessions "
        f"WHERE workspace_id = $1 AND session_id = $2 ON CONFLICT DO NOTHING RETURNING {SESSION}",
        workspace_id, source_id, target_id))


async def set_last_seq(conn: Conn, workspace_id: str, session_id: str, last_seq: int) -> Session:
    """Hand out sequence numbers after `last_seq` from now on (messages copied in)."""
    row = await conn.fetchrow(
        "UPDATE sessions SET last_seq = $3 WHERE workspace_id = $1 AND session_id = $2 "
        f"RETURNING {SESSION}", workspace_id, session_id, last_seq)
    assert row is not None, "the session must exist"
    return Session(*row)
