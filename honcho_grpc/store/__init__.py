"""The store: every SQL statement of the service lives here (asyncpg). Rows leave it as the
domain values of honcho_grpc/model.py, never as database records.

Functions take what they run on: a `Conn` when they run several statements or must run
inside the caller's transaction (the domain opens transactions and passes them down), an
`Executor` (a connection, or the pool: any free connection) when they run one statement.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection
Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool
