"""Where the domain opens transactions. Every write of several statements runs in one; the
connection it yields is what the store's functions take."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from honcho_grpc.store import Conn


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A pooled connection inside a transaction: committed when the block ends, rolled back
    when it raises."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A pooled connection without a transaction: for statements that each stand alone but
    should not take a pool round trip each."""
    async with pool.acquire() as conn:
        yield conn
