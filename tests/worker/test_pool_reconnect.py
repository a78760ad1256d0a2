"""The worker's connection pool finds a restarted PostgreSQL within seconds, however long it
was down. psycopg_pool doubles its pause between reconnection attempts (1, 2, 4, 8, 16 s...)
for as long as one chain of attempts lasts; honcho_grpc/worker/db.py keeps chains short so
a pause begun just before the database returns cannot leave the worker idle for long."""

from __future__ import annotations

import asyncio
import time

import psycopg

from honcho_grpc.worker.db import Pool, make_pool
from tests.postgres_process import PostgresProcess

DOWN_SECONDS = 16.0  # attempts at 0, 1, 3, 7 and 15 s fail; a long chain's next is at 31 s


async def query_until_it_works(pool: Pool) -> float:
    """What the worker's loops do: retry what failed, each try asking the pool anew."""
    while True:
        try:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
            return time.monotonic()
        except psycopg.OperationalError:
            await asyncio.sleep(0.5)


async def test_the_pool_reconnects_soon_after_a_long_outage(
        own_postgres: tuple[PostgresProcess, str]) -> None:
    pg, dsn = own_postgres
    pool = make_pool(dsn, 4, name="reconnect-test")
    await pool.open(wait=True, timeout=30)
    try:
        pg.stop()
        # Asking all along, as the worker does: the pool's own attempts back off meanwhile.
        worked = asyncio.create_task(query_until_it_works(pool))
        await asyncio.sleep(DOWN_SECONDS)
        assert not worked.done()
        pg.start()
        back = time.monotonic()
        waited = await asyncio.wait_for(worked, 60) - back
        # A chain of at most 5 s ends in pauses of at most 4 s; a caller waits at most 5 s
        # before retrying and so starting a new chain.
        assert waited < 6.0, f"the pool reconnected {waited:.1f} s after the database returned"
    finally:
        await pool.close()
