"""SQL for webhook endpoints, as delivery reads them."""

from __future__ import annotations

import asyncpg


async def endpoint_url(conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str,
                       endpoint_id: str) -> str | None:
    """The endpoint's URL; None once it was removed."""
    url = await conn.fetchval(
        "SELECT url FROM webhook_endpoints WHERE workspace_id = $1 AND endpoint_id = $2",
        workspace_id, endpoint_id)
    return str(url) if url is not None else None
