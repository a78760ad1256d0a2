"""SQL for session membership: who is in a session and with which observation settings."""

from __future__ import annotations

from honcho_grpc.model import Page, PeerSettings, SessionPeer
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store.filters import Params
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.peers import ensure_peers
from honcho_grpc.store.rows import columns, every, one

MEMBER = columns(SessionPeer)


async def add_peers(conn: Conn, workspace_id: str, session_id: str,
                    peers: PeerSettings) -> None:
    """Join (or re-join) peers, creating them if needed. Given settings overwrite old ones."""
    if not peers:
        return
    ids = sorted(peers)
    await ensure_peers(conn, workspace_id, ids)
    await conn.execute(
        """
        INSERT INTO session_peers (workspace_id, session_id, peer_id, observe_me, observe_others)
        SELECT $1, $2, p.id, p.me, p.others
        FROM unnest($3::text[], $4::boolean[], $5::boolean[]) AS p(id, me, others)
        ON CONFLICT (workspace_id, session_id, peer_id) DO UPDATE SET
            observe_me = coalesce(EXCLUDED.observe_me, session_peers.observe_me),
            observe_others = coalesce(EXCLUDED.observe_others, session_peers.observe_others),
            joined_at = CASE WHEN session_peers.left_at IS NULL THEN session_peers.joined_at
                             ELSE now() END,
            left_at = NULL
        """,
        workspace_id, session_id, ids, [peers[p][0] for p in ids], [peers[p][1] for p in ids],
    )


async def remove_peers(conn: Conn, workspace_id: str, session_id: str,
                       peer_ids: list[str]) -> None:
    await conn.execute(
        "UPDATE session_peers SET left_at = now() WHERE workspace_id = $1 AND session_id = $2 "
        "AND peer_id = ANY($3::text[]) AND left_at IS NULL", workspace_id, session_id, peer_ids,
    )


async def set_peers(conn: Conn, workspace_id: str, session_id: str, peers: PeerSettings) -> None:
    """Make the active member set exactly `peers`."""
    await conn.execute(
        "UPDATE session_peers SET left_at = now() WHERE workspace_id = $1 AND session_id = $2 "
        "AND left_at IS NULL AND NOT (peer_id = ANY($3::text[]))",
        workspace_id, session_id, sorted(peers),
    )
    await add_peers(conn, workspace_id, session_id, peers)


async def active_members(conn: Executor, workspace_id: str, session_id: str) -> list[SessionPeer]:
    return every(SessionPeer, await conn.fetch(
        f"SELECT {MEMBER} FROM session_peers WHERE workspace_id = $1 AND session_id = $2 "
        "AND left_at IS NULL ORDER BY peer_id", workspace_id, session_id,
    ))


async def list_members(conn: Executor, workspace_id: str, session_id: str,
                       include_inactive: bool, page_size: int,
                       token: str) -> Page[SessionPeer]:
    params = Params()
    where = (f"sp.workspace_id = {params.add(workspace_id)} AND "
             f"sp.session_id = {params.add(session_id)}")
    if not include_inactive:
        where += " AND sp.left_at IS NULL"
    return await keyset_page(
        conn, SessionPeer, select=f"SELECT {columns(SessionPeer, 'sp')} FROM session_peers sp",
        where=where, params=params,
        order=("sp.peer_id",), reverse=False, page_size=page_size, token=token,
        bound_to=binding("members", workspace_id, session_id, include_inactive),
    )


async def get_member(conn: Executor, workspace_id: str, session_id: str,
                     peer_id: str) -> SessionPeer | None:
    return one(SessionPeer, await conn.fetchrow(
        f"SELECT {MEMBER} FROM session_peers WHERE workspace_id = $1 AND session_id = $2 "
        "AND peer_id = $3", workspace_id, session_id, peer_id,
    ))


async def set_member_config(conn: Conn, workspace_id: str, session_id: str, peer_id: str,
                            observe_me: bool | None,
                            observe_others: bool | None) -> SessionPeer | None:
    return one(SessionPeer, await conn.fetchrow(
        "UPDATE session_peers SET observe_me = coalesce($4, observe_me), "
        "observe_others = coalesce($5, observe_others) "
        f"WHERE workspace_id = $1 AND session_id = $2 AND peer_id = $3 RETURNING {MEMBER}",
        workspace_id, session_id, peer_id, observe_me, observe_others,
    ))


async def count_observers(conn: Conn, workspace_id: str, session_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM session_peers WHERE workspace_id = $1 AND session_id = $2 "
        "AND left_at IS NULL AND observe_others", workspace_id, session_id,
    ))


async def copy_members(conn: Conn, workspace_id: str, source_id: str, target_id: str) -> None:
    """The source session's memberships (past ones too, with their times) into the target."""
    await conn.execute(
        "INSERT INTO session_peers (workspace_id, session_id, peer_id, observe_me, "
        "observe_others, joined_at, left_at) SELECT workspace_id, $3, peer_id, observe_me, "
        "observe_others, joined_at, left_at FROM session_peers "
        "WHERE workspace_id = $1 AND session_id = $2", workspace_id, source_id, target_id)


async def count_memberships(conn: Executor, workspace_id: str, peer_id: str,
                            session_ids: list[str]) -> int:
    """Of `session_ids`, how many the peer is an active member of."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM session_peers WHERE workspace_id = $1 AND peer_id = $2 "
        "AND session_id = ANY($3::text[]) AND left_at IS NULL",
        workspace_id, peer_id, session_ids))
