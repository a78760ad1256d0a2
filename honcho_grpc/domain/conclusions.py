"""Conclusions: what an observer peer holds true about an observed one (itself included).
Callers state explicit ones; the worker derives the rest. Deleting one removes those built
on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from honcho_grpc.domain import peers, sessions
from honcho_grpc.domain.idempotent import R, Retry, run_write
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import not_found
from honcho_grpc.ids import new_id
from honcho_grpc.model import Conclusion, ConclusionDraft, Json, NewConclusion, Page
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import Conn
from honcho_grpc.store import conclusions as store

MAX_BATCH = 100        # conclusions per CreateConclusions
MAX_CHARS = 65_535     # characters per conclusion
DEFAULT_TOP_K = 10


async def create(pool: asyncpg.Pool, embedder: Embedder, workspace_id: str,
                 drafts: Sequence[ConclusionDraft], retry: Retry[R],
                 respond: Callable[[list[Conclusion]], R]) -> R:
    """Store explicit conclusions with their embeddings; their peers and sessions must
    exist. (The vectors are computed before the transaction, so that it stays short.)"""
    vectors = await embedder.embed([d.content for d in drafts])
    items = [NewConclusion(conclusion_id=new_id(), observer_id=d.observer_id,
                           observed_id=d.observed_id, session_id=d.session_id,
                           content=d.content, embedding=vector, model=embedder.model_id)
             for d, vector in zip(drafts, vectors, strict=True)]

    async def write(conn: Conn) -> R:
        await _require_parents(conn, workspace_id, drafts)
        return respond(await store.insert_conclusions(conn, workspace_id, items))

    return await run_write(pool, workspace_id, retry, write)


async def _require_parents(conn: Conn, workspace_id: str,
                           drafts: Sequence[ConclusionDraft]) -> None:
    named = {d.observer_id for d in drafts} | {d.observed_id for d in drafts}
    await peers.require(conn, workspace_id, *sorted(named))
    for session_id in sorted({d.session_id for d in drafts if d.session_id}):
        await sessions.require(conn, workspace_id, session_id)


async def list_conclusions(pool: asyncpg.Pool, workspace_id: str, filters: Json | None,
                           include_invalid: bool, reverse: bool, page_size: int,
                           token: str) -> Page[Conclusion]:
    """Newest first unless `reverse`; superseded ones only with `include_invalid`."""
    return await store.list_conclusions(pool, workspace_id, filters, include_invalid, reverse,
                                        page_size, token)


async def query(pool: asyncpg.Pool, embedder: Embedder, workspace_id: str, observer_id: str,
                observed_id: str, text: str, top_k: int, max_distance: float,
                filters: Json | None) -> list[Conclusion]:
    """The pair's valid conclusions nearest in meaning to `text` (top_k 0: the default;
    max_distance 0: no bound)."""
    vector = await embedder.embed_one(text)
    return await store.query_conclusions(pool, workspace_id, observer_id, observed_id, vector,
                                         top_k or DEFAULT_TOP_K, max_distance, filters)


async def delete(pool: asyncpg.Pool, workspace_id: str, conclusion_id: str) -> None:
    async with transaction(pool) as conn:
        found = await store.delete_conclusion(conn, workspace_id, conclusion_id)
    if not found:
        raise not_found("conclusion", workspaceId=workspace_id, conclusionId=conclusion_id)
