"""Hybrid message search: full text (BM25) and pgvector HNSW, fused by score.

Candidates come from both arms: messages containing the query's rarest words (a cheap GIN
lookup) and the nearest vectors. Each candidate then gets a BM25 score and a cosine
similarity; the final score is a convex combination of the two, each normalised over the
candidates. On the LoCoMo subset this beats BM25 alone, where rank fusion (RRF) of the same
two arms loses to it (bench/locomo_retrieval.py). Messages not yet embedded are still found
and ranked by the text arm.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

import asyncpg

from honcho_grpc.store import search as store
from honcho_grpc.store.search import Scope

TEXT_WEIGHT = 0.5        # 1 - TEXT_WEIGHT goes to the vector arm
RARE_LEXEMES = 4         # query words used to find text candidates
COMMON_SHARE = 0.05      # ... unless they are in more than this share of the messages
CANDIDATES = 50          # per arm, at least

__all__ = ["Hit", "Scope", "search_messages"]


@dataclass
class Hit:
    row: asyncpg.Record
    score: float


async def _ready(vector: Any) -> Any:
    # Shielded: cancelling this search must not cancel a vector other readers await too.
    return await asyncio.shield(vector) if inspect.isawaitable(vector) else vector


def fuse(scored: list[asyncpg.Record]) -> dict[str, float]:
    """score = w * bm25 / max(bm25) + (1 - w) * min-max(cosine); unembedded rows get the
    lowest cosine of the pool."""
    top_bm = max((r["bm25"] for r in scored), default=0.0) or 1.0
    cosines = [r["cosine"] for r in scored if r["cosine"] is not None]
    low, high = (min(cosines), max(cosines)) if cosines else (0.0, 1.0)
    span = (high - low) or 1.0
    return {
        r["message_id"]: TEXT_WEIGHT * r["bm25"] / top_bm + (1 - TEXT_WEIGHT) * (
            ((r["cosine"] if r["cosine"] is not None else low) - low) / span)
        for r in scored
    }


async def search_messages(pool: asyncpg.Pool, embedder: Any, scope: Scope, query: str,
                          filters: dict[str, Any] | None, limit: int, *,
                          vector: Any = None) -> list[Hit]:
    """`vector`: the query's embedding when the caller already has it (or a future of it)."""
    n = max(CANDIDATES, limit * 4)
    # The query is embedded (in a thread) while the text arm runs in the database.
    embedding = asyncio.ensure_future(embedder.embed_one(query) if vector is None
                                      else _ready(vector))
    try:
        async with pool.acquire() as conn, conn.transaction():
            # Everything that does not need the query's vector runs while it is computed.
            lexemes = await store.rare_lexemes(conn, scope.workspace_id, query, RARE_LEXEMES,
                                                COMMON_SHARE)
            text_ids = await store.text_candidates(conn, scope, filters, lexemes, n)
            exact = await store.plan_vector_scan(conn, scope, n)
            vector = await embedding
            scored = await store.score_candidates(conn, scope, filters, query, vector,
                                                  text_ids, n, exact)
            if not scored:
                return []
            scores = fuse(scored)
            best = sorted(scores, key=lambda i: -scores[i])[:limit]
            rows = await store.messages_by_id(conn, scope.workspace_id, best)
    finally:
        if not embedding.done():
            embedding.cancel()
    # A message deleted since it was scored is left out.
    return [Hit(rows[i], scores[i]) for i in best if i in rows]
