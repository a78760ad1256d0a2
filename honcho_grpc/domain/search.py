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
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncpg

from honcho_grpc.domain.transactions import transaction
from honcho_grpc.model import Json, Message, Vector
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import search as store
from honcho_grpc.store.search import Candidate, Scope

TEXT_WEIGHT = 0.5        # 1 - TEXT_WEIGHT goes to the vector arm
RARE_LEXEMES = 4         # query words used to find text candidates
COMMON_SHARE = 0.05      # ... unless they are in more than this share of the messages
CANDIDATES = 50          # per arm, at least

__all__ = ["Hit", "Scope", "search_messages"]


@dataclass(frozen=True, slots=True)
class Hit:
    message: Message
    score: float


async def _ready(vector: Vector | Awaitable[Vector]) -> Vector:
    # Shielded: cancelling this search must not cancel a vector other readers await too.
    return await asyncio.shield(vector) if inspect.isawaitable(vector) else vector


def fuse(scored: list[Candidate]) -> dict[str, float]:
    """score = w * bm25 / max(bm25) + (1 - w) * min-max(cosine); unembedded rows get the
    lowest cosine of the pool."""
    top_bm = max((c.bm25 for c in scored), default=0.0) or 1.0
    cosines = [c.cosine for c in scored if c.cosine is not None]
    low, high = (min(cosines), max(cosines)) if cosines else (0.0, 1.0)
    span = (high - low) or 1.0
    return {
        c.message_id: TEXT_WEIGHT * c.bm25 / top_bm + (1 - TEXT_WEIGHT) * (
            ((c.cosine if c.cosine is not None else low) - low) / span)
        for c in scored
    }


async def search_messages(pool: asyncpg.Pool, embedder: Embedder, scope: Scope, query: str,
                          filters: Json | None, limit: int, *,
                          vector: Vector | Awaitable[Vector] | None = None) -> list[Hit]:
    """`vector`: the query's embedding when the caller already has it (or a future of it)."""
    n = max(CANDIDATES, limit * 4)
    # The query is embedded (in a thread) while the text arm runs in the database.
    embedding = asyncio.ensure_future(embedder.embed_one(query) if vector is None
                                      else _ready(vector))
    try:
        async with transaction(pool) as conn:
            # Everything that does not need the query's vector runs while it is computed.
            lexemes = await store.rare_lexemes(conn, scope.workspace_id, query, RARE_LEXEMES,
                                                COMMON_SHARE)
            text_ids = await store.text_candidates(conn, scope, filters, lexemes, n)
            exact = await store.plan_vector_scan(conn, scope, n)
            scored = await store.score_candidates(conn, scope, filters, query,
                                                  await embedding, text_ids, n, exact)
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
