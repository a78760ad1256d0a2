"""Draining the embedding backlog: messages are embedded after they are stored, never while
CreateMessages waits. Several processes may drain one backlog (rows are claimed with
FOR UPDATE SKIP LOCKED); a failure backs the rows off instead of dropping them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from honcho_grpc.errors import HonchoError
from honcho_grpc.store import search_stats
from honcho_grpc.store.queue import EMBED_CHANNEL

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 600


def embedding_text(peer_id: str, content: str) -> str:
    """What gets embedded: the speaker matters to questions about who said what."""
    return f"{peer_id}: {content}"


class EmbeddingBacklog:
    def __init__(self, pool: asyncpg.Pool, embedder: Any, batch_size: int = 64,
                 poll_seconds: float = 5.0) -> None:
        self.pool = pool
        self.embedder = embedder
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.wake = asyncio.Event()

    async def drain_once(self) -> int:
        """Embed one batch; returns how many messages were embedded."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT b.workspace_id, b.message_id, b.attempts, m.session_id, m.peer_id,
                       m.content
                FROM embedding_backlog b LEFT JOIN messages m
                  ON m.workspace_id = b.workspace_id AND m.message_id = b.message_id
                WHERE b.run_after <= now() ORDER BY b.run_after LIMIT $1
                FOR UPDATE OF b SKIP LOCKED
                """,
                self.batch_size,
            )
            if not rows:
                return 0
            orphans = [r for r in rows if r["content"] is None]  # message deleted meanwhile
            rows = [r for r in rows if r["content"] is not None]
            await self._forget(conn, orphans)
            if not rows:
                return len(orphans)
            try:
                vectors = await self.embedder.embed(
                    [embedding_text(r["peer_id"], r["content"]) for r in rows])
            except Exception as exc:
                log.warning("embedding failed for %d messages: %s", len(rows),
                            type(exc).__name__)
                await self._back_off(conn, rows, exc)
                return 0
            await conn.executemany(
                "INSERT INTO message_embeddings (workspace_id, message_id, session_id, "
                "peer_id, model, embedding) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (workspace_id, message_id) "
                "DO UPDATE SET embedding = EXCLUDED.embedding, model = EXCLUDED.model",
                [(r["workspace_id"], r["message_id"], r["session_id"], r["peer_id"],
                  self.embedder.model_id, v)
                 for r, v in zip(rows, vectors, strict=True)],
            )
            await search_stats.add_messages(conn, [r["workspace_id"] for r in rows],
                                            [r["message_id"] for r in rows])
            await self._forget(conn, rows)
            return len(rows) + len(orphans)

    async def _forget(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
        if rows:
            await conn.execute(
                "DELETE FROM embedding_backlog b USING unnest($1::text[], $2::text[]) "
                "AS d(ws, id) WHERE b.workspace_id = d.ws AND b.message_id = d.id",
                [r["workspace_id"] for r in rows], [r["message_id"] for r in rows],
            )

    async def _back_off(self, conn: asyncpg.Connection, rows: list[asyncpg.Record],
                        exc: Exception) -> None:
        await conn.execute(
            "UPDATE embedding_backlog b SET attempts = attempts + 1, last_error = $3, "
            "run_after = now() + make_interval(secs => least($4, 2 ^ (attempts + 1))) "
            "FROM unnest($1::text[], $2::text[]) AS d(ws, id) "
            "WHERE b.workspace_id = d.ws AND b.message_id = d.id",
            [r["workspace_id"] for r in rows], [r["message_id"] for r in rows],
            type(exc).__name__, MAX_BACKOFF_SECONDS,
        )

    async def pending(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM embedding_backlog"))

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop` is set; wake on NOTIFY, poll as a safety net."""
        listener = await self.pool.acquire()

        def on_notify(*_: object) -> None:
            self.wake.set()

        try:
            await listener.add_listener(EMBED_CHANNEL, on_notify)
            while not stop.is_set():
                try:
                    while not stop.is_set() and await self.drain_once():
                        pass
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                        HonchoError) as exc:  # HonchoError: SERVER_BUSY, the pool is full
                    log.warning("embedding backlog: %s", type(exc).__name__)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError):
                await listener.remove_listener(EMBED_CHANNEL, on_notify)
            await self.pool.release(listener)
