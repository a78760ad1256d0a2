"""SQL for peers: get-or-create, get, list, update, delete, and the sessions a peer is in."""

from __future__ import annotations

from honcho_grpc.model import Json, Page, Peer, Session
from honcho_grpc.store import Conn, Executor, backlog, search_stats
from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, one, update
from honcho_grpc.store.workspaces import ensure_workspace

PEER = columns(Peer)


async def ensure_peers(conn: Conn, workspace_id: str, peer_ids: list[str]) -> None:
    await conn.execute(
        "INSERT INTO peers (workspace_id, peer_id) SELECT $1, unnest($2::text[]) "
        "ON CONFLICT DO NOTHING", workspace_id, sorted(set(peer_ids)),
    )


async def get_or_create_peer(conn: Conn, workspace_id: str, peer_id: str, metadata: Json,
                             configuration: Json) -> tuple[Peer, bool]:
    await ensure_workspace(conn, workspace_id)
    row = await conn.fetchrow(
        "INSERT INTO peers (workspace_id, peer_id, metadata, configuration) "
        f"VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING {PEER}",
        workspace_id, peer_id, metadata, configuration,
    )
    if row is not None:
        return Peer(*row), True
    existing = await get_peer(conn, workspace_id, peer_id)
    assert existing is not None
    return existing, False


async def get_peer(conn: Executor, workspace_id: str, peer_id: str) -> Peer | None:
    return one(Peer, await conn.fetchrow(
        f"SELECT {PEER} FROM peers WHERE workspace_id = $1 AND peer_id = $2",
        workspace_id, peer_id))


async def existing_peers(conn: Executor, workspace_id: str, peer_ids: list[str]) -> set[str]:
    """Which of `peer_ids` exist."""
    rows = await conn.fetch(
        "SELECT peer_id FROM peers WHERE workspace_id = $1 AND peer_id = ANY($2::text[])",
        workspace_id, peer_ids)
    return {r[0] for r in rows}


async def list_peers(conn: Executor, workspace_id: str, filters: Json | None, reverse: bool,
                     page_size: int, token: str) -> Page[Peer]:
    params = f.Params()
    where = f"p.workspace_id = {params.add(workspace_id)} AND " + f.compile_filter(
        filters, f.peer_filters("p"), params)
    return await keyset_page(
        conn, Peer, select=f"SELECT {columns(Peer, 'p')} FROM peers p", where=where,
        params=params, order=("p.created_at", "p.peer_id"), reverse=reverse,
        page_size=page_size, token=token,
        bound_to=binding("peers", workspace_id, filters, reverse),
    )


async def update_peer(conn: Executor, workspace_id: str, peer_id: str,
                      changes: Json) -> Peer | None:
    return await update(conn, Peer, "peers", {"workspace_id": workspace_id, "peer_id": peer_id},
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


async def list_peer_sessions(conn: Executor, workspace_id: str, peer_id: str,
                             filters: Json | None, reverse: bool, page_size: int,
                             token: str) -> Page[Session]:
    params = f.Params()
    ws, peer = params.add(workspace_id), params.add(peer_id)
    where = (f"s.workspace_id = {ws} AND EXISTS (SELECT 1 FROM session_peers sp WHERE "
             f"sp.workspace_id = {ws} AND sp.session_id = s.session_id AND sp.peer_id = {peer} "
             f"AND sp.left_at IS NULL) AND "
             + f.compile_filter(filters, f.session_filters("s"), params))
    return await keyset_page(
        conn, Session, select=f"SELECT {columns(Session, 's')} FROM sessions s", where=where,
        params=params, order=("s.created_at", "s.session_id"), reverse=reverse,
        page_size=page_size, token=token,
        bound_to=binding("peer_sessions", workspace_id, peer_id, filters, reverse),
    )


async def lock_peers(conn: Conn, workspace_id: str,
                     peer_ids: list[str]) -> set[str]:
    """Those of the peers that exist, share-locked until the transaction ends, so that a
    concurrent DeletePeer waits for what is written about them and then cascades over it."""
    rows = await conn.fetch(
        "SELECT peer_id FROM peers WHERE workspace_id = $1 AND peer_id = ANY($2::text[]) "
        "FOR KEY SHARE", workspace_id, peer_ids)
    return {r["peer_id"] for r in rows}
