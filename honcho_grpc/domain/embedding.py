"""Draining the embedding backlog: messages are embedded after they are stored, never while
CreateMessages waits. Several processes may drain one backlog (rows are claimed with
FOR UPDATE SKIP LOCKED); a failure backs the rows off instead of dropping them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from honcho_grpc.domain import activity
from honcho_grpc.domain.events import EMBEDDINGS_DRAINED
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import HonchoError
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import Conn, backlog, events, schema
from honcho_grpc.store.backlog import Pending

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 600
DRAINERS = 2  # batches in flight: one in the model, one being written
# Before each batch a drain loop lets message writes of this process go first: it waits for a
# pause of YIELD_GAP_SECONDS between them, at most YIELD_AT_MOST_SECONDS (so a steady stream
# of writes still leaves the backlog a share, and it never stalls). A batch in the model holds
# both cores for ~65 ms: waiting at most 0.25 s, one client's CreateMessages of 100 took
# 18-19 ms under `up`, at most 1 s 12-13 ms; the model catches up once the writes pause.
YIELD_GAP_SECONDS = 0.02
YIELD_AT_MOST_SECONDS = 1.0


def embedding_text(peer_id: str, content: str) -> str:
    """What gets embedded: the speaker matters to questions about who said what."""
    return f"{peer_id}: {content}"


async def warn_of_other_models(pool: asyncpg.Pool, model_id: str) -> list[str]:
    """Say at start-up when stored vectors were made by another model than the one running
    (a model or computation changed, e.g. the offline model's int8 compute of 2026-12-06):
    search still ranks them beside the new ones, but they are not quite comparable."""
    others = await schema.other_models(pool, model_id)
    if others:
        log.warning("stored vectors were made by %s, not by the running model %s; set "
                    "EMBEDDING_MODEL to that model, or run `honcho-grpc migrate "
                    "--reset-embeddings` to embed everything again",
                    ", ".join(others), model_id)
    return others


class EmbeddingBacklog:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, batch_size: int = 64,
                 poll_seconds: float = 5.0) -> None:
        self.pool = pool
        self.embedder = embedder
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.wake = asyncio.Event()

    async def drain_once(self) -> int:
        """Embed one batch; returns how many messages were embedded."""
        async with transaction(self.pool) as conn:
            claimed = await backlog.claim_due(conn, self.batch_size)
            if not claimed:
                return 0
            orphans = [p for p in claimed if p.content is None]  # message deleted meanwhile
            await backlog.forget(conn, orphans)
            live = [p for p in claimed if p.content is not None]
            embedded = await self._embed(conn, live) if live else 0
        if orphans or embedded:
            await self._announce_drained([p.workspace_id for p in claimed])
        # A failed batch counts as no progress, so that the drain loop waits.
        return len(orphans) + embedded if embedded or not live else 0

    async def _announce_drained(self, workspace_ids: list[str]) -> None:
        """`embeddings.drained` for each of these workspaces whose backlog is now empty.
        Checked after the batch commits: two drainers finishing a workspace's last rows at
        once may both announce it, but neither can miss it."""
        async with transaction(self.pool) as conn:
            for ws in await backlog.drained_workspaces(conn, workspace_ids):
                await events.emit(conn, EMBEDDINGS_DRAINED, ws)

    async def _embed(self, conn: Conn, items: list[Pending]) -> int:
        try:
            vectors = await self.embedder.embed(
                [embedding_text(p.peer_id or "", p.content or "") for p in items])
        except Exception as exc:
            log.warning("embedding failed for %d messages: %s", len(items),
                        type(exc).__name__)
            await backlog.back_off(conn, items, type(exc).__name__, MAX_BACKOFF_SECONDS)
            return 0
        await backlog.store_embeddings(conn, items, self.embedder.model_id, vectors)
        await backlog.forget(conn, items)
        return len(items)

    async def pending(self) -> int:
        return await backlog.pending_count(self.pool)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop` is set; wake on NOTIFY, poll as a safety net. DRAINERS loops
        drain at once (rows are claimed with SKIP LOCKED): while one waits for the model,
        another writes its batch to PostgreSQL, so neither the model nor the index inserts
        wait for the other."""
        def on_notify(*_: object) -> None:
            self.wake.set()

        async with backlog.listening(self.pool, backlog.EMBED_CHANNEL, on_notify):
            await asyncio.gather(*(self._drain_loop(stop) for _ in range(DRAINERS)))

    async def _drain_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while not stop.is_set():
                    await activity.step_aside(YIELD_GAP_SECONDS, YIELD_AT_MOST_SECONDS)
                    if not await self.drain_once():
                        break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    HonchoError) as exc:  # HonchoError: SERVER_BUSY, the pool is full
                log.warning("embedding backlog: %s", type(exc).__name__)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
