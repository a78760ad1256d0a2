"""SQL for the embedding backlog's clean-up when messages are deleted."""

from __future__ import annotations

import asyncpg


async def forget_where(conn: asyncpg.Connection, workspace_id: str, condition: str,
                       *args: object) -> None:
    """Drop backlog rows of the messages matching `condition` (SQL over alias m, args from
    $2), before those messages are deleted."""
    await conn.execute(
        f"DELETE FROM embedding_backlog b USING messages m WHERE b.workspace_id = $1 "
        f"AND m.workspace_id = $1 AND m.message_id = b.message_id AND {condition}",
        workspace_id, *args)
