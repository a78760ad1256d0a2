"""SQL for the search statistics: lexeme document frequencies and corpus size per workspace
(BM25), and message counts per session and per peer (the vector arm's choice of plan)."""

from __future__ import annotations

import asyncpg


async def uncount_where(conn: asyncpg.Connection, workspace_id: str, condition: str,
                        *args: object) -> None:
    """Remove messages matching `condition` (SQL over alias m, args from $2) from the
    statistics; messages still in the embedding backlog were never counted."""
    ids = [r["message_id"] for r in await conn.fetch(
        f"SELECT m.message_id FROM messages m WHERE m.workspace_id = $1 AND {condition} "
        "AND NOT EXISTS (SELECT 1 FROM embedding_backlog b WHERE b.workspace_id = $1 "
        "AND b.message_id = m.message_id)", workspace_id, *args)]
    if ids:
        await add_messages(conn, [workspace_id] * len(ids), ids, sign=-1)
        # A deleted session or peer leaves no row behind.
        await conn.execute("DELETE FROM scope_stats WHERE workspace_id = $1 AND docs <= 0",
                           workspace_id)


async def add_messages(conn: asyncpg.Connection, workspace_ids: list[str],
                       message_ids: list[str], sign: int = 1) -> None:
    """Count (sign=1) or uncount (sign=-1) messages in their workspace's statistics.
    Rows are written in key order so that concurrent writers cannot deadlock."""
    await conn.execute(
        """
        INSERT INTO lexeme_stats (workspace_id, lexeme, ndoc)
        SELECT m.workspace_id, u.lexeme, $3 * count(*)
        FROM messages m JOIN unnest($1::text[], $2::text[]) AS b(ws, id)
          ON m.workspace_id = b.ws AND m.message_id = b.id,
          unnest(m.search_text) AS u
        GROUP BY m.workspace_id, u.lexeme ORDER BY m.workspace_id, u.lexeme
        ON CONFLICT (workspace_id, lexeme)
        DO UPDATE SET ndoc = greatest(lexeme_stats.ndoc + EXCLUDED.ndoc, 0)
        """,
        workspace_ids, message_ids, sign,
    )
    await conn.execute(
        """
        INSERT INTO search_stats (workspace_id, docs, total_length)
        SELECT m.workspace_id, $3 * count(*), $3 * sum(length(m.search_text))
        FROM messages m JOIN unnest($1::text[], $2::text[]) AS b(ws, id)
          ON m.workspace_id = b.ws AND m.message_id = b.id
        GROUP BY m.workspace_id ORDER BY m.workspace_id
        ON CONFLICT (workspace_id) DO UPDATE SET
            docs = greatest(search_stats.docs + EXCLUDED.docs, 0),
            total_length = greatest(search_stats.total_length + EXCLUDED.total_length, 0)
        """,
        workspace_ids, message_ids, sign,
    )
    await conn.execute(
        """
        INSERT INTO scope_stats (workspace_id, kind, scope_id, docs)
        SELECT m.workspace_id, s.kind, s.scope_id, $3 * count(*)
        FROM messages m JOIN unnest($1::text[], $2::text[]) AS b(ws, id)
          ON m.workspace_id = b.ws AND m.message_id = b.id,
          LATERAL (VALUES ('peer', m.peer_id), ('session', m.session_id)) AS s(kind, scope_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (workspace_id, kind, scope_id)
        DO UPDATE SET docs = greatest(scope_stats.docs + EXCLUDED.docs, 0)
        """,
        workspace_ids, message_ids, sign,
    )
