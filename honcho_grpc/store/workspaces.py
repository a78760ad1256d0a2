"""SQL for workspaces: get-or-create, get, list, update, delete, and the configuration that
writes resolve settings against."""

from __future__ import annotations

from honcho_grpc.model import Json, Page, Workspace
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, one, update

WORKSPACE = columns(Workspace)


async def ensure_workspace(conn: Conn, workspace_id: str) -> None:
    """Create the workspace with defaults if missing (writes may auto-create parents)."""
    await conn.execute(
        "INSERT INTO workspaces (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING", workspace_id
    )


async def get_or_create_workspace(conn: Conn, workspace_id: str, metadata: Json,
                                  configuration: Json) -> tuple[Workspace, bool]:
    row = await conn.fetchrow(
        "INSERT INTO workspaces (workspace_id, metadata, configuration) VALUES ($1, $2, $3) "
        f"ON CONFLICT DO NOTHING RETURNING {WORKSPACE}", workspace_id, metadata, configuration,
    )
    if row is not None:
        return Workspace(*row), True
    existing = await get_workspace(conn, workspace_id)
    assert existing is not None  # rows are never deleted and re-created within one statement
    return existing, False


async def get_workspace(conn: Executor, workspace_id: str) -> Workspace | None:
    return one(Workspace, await conn.fetchrow(
        f"SELECT {WORKSPACE} FROM workspaces WHERE workspace_id = $1", workspace_id))


async def list_workspaces(conn: Executor, filters: Json | None, reverse: bool, page_size: int,
                          token: str) -> Page[Workspace]:
    params = f.Params()
    where = f.compile_filter(filters, f.workspace_filters("w"), params)
    return await keyset_page(
        conn, Workspace, select=f"SELECT {columns(Workspace, 'w')} FROM workspaces w",
        where=where, params=params, order=("w.created_at", "w.workspace_id"), reverse=reverse,
        page_size=page_size, token=token, bound_to=binding("workspaces", filters, reverse),
    )


async def update_workspace(conn: Executor, workspace_id: str,
                           changes: Json) -> Workspace | None:
    return await update(conn, Workspace, "workspaces", {"workspace_id": workspace_id}, changes)


async def delete_workspace(conn: Conn, workspace_id: str) -> bool:
    status: str = await conn.execute("DELETE FROM workspaces WHERE workspace_id = $1", workspace_id)
    # Queue rows have no foreign key (migration 0005). After the row delete, which waited for
    # any writer holding the workspace, so that what that writer enqueued is seen here.
    await conn.execute("DELETE FROM queue WHERE workspace_id = $1", workspace_id)
    return status != "DELETE 0"
