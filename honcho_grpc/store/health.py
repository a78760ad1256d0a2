"""The database's side of the health check."""

from __future__ import annotations

import asyncpg


async def ping(pool: asyncpg.Pool) -> None:
    """One pooled round trip. The caller bounds it in time; waiting for a free connection
    counts: a pool that cannot hand one out in time serves nobody either."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
