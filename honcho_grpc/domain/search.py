"""Hybrid message search: full text (BM25) and pgvector HNSW, fused by score.

Candidates come from both arms: messages containing the query's rarer words (a cheap GIN
lookup; a word is left out only when it is in more messages than the lookup can rank fast)
and the nearest vectors; when the query names a time ("on 25 February 2022", "last week",
domain/when.py), the messages created then join them. Each candidate then gets a BM25 score
and a cosine similarity; the final score is a convex combination of the two, each normalised
over the candidates, plus a bonus for a message of the time the query names and one for a
message by a speaker the query names. The messages
either side of each candidate in its session are scored too, and a message scores at least
NEIGHBOUR_SHARE of its best neighbour: in a conversation the answer is often the turn after
(or before) the one that matches the question's words. On the LoCoMo
subset this beats BM25 alone, where rank fusion (RRF) of the same two arms loses to it
(bench/locomo_retrieval.py). Messages not yet embedded are still found and ranked by the
text arm.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncpg

from honcho_grpc.domain import when
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.model import Json, Message, Vector
from honcho_grpc.providers import lexemes as lexeme_words
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import filters as store_filters
from honcho_grpc.store import search as store
from honcho_grpc.store.search import Candidate, QueryLexeme, Scope

TEXT_WEIGHT = 0.5        # 1 - TEXT_WEIGHT goes to the vector arm
TIME_WEIGHT = 0.25       # bonus for a message created when the query says
SPEAKER_WEIGHT = 0.15    # bonus for a message whose speaker the query names
RARE_LEXEMES = 8         # query words used to find text candidates, rarest first
TEXT_ROW_BUDGET = 1000   # ... while together they are in at most this many messages
CANDIDATES = 50          # per arm, at least
NEIGHBOUR_SHARE = 0.8    # of the best adjacent turn's score a message gets at least

__all__ = ["Hit", "Scope", "search_messages"]


@dataclass(frozen=True, slots=True)
class Hit:
    message: Message
    score: float


async def _ready(vector: Vector | Awaitable[Vector]) -> Vector:
    # Shielded: cancelling this search must not cancel a vector other readers await too.
    return await asyncio.shield(vector) if inspect.isawaitable(vector) else vector


def candidate_weights(lexemes: list[QueryLexeme]) -> dict[str, float]:
    """The lexemes that find text candidates, with their idf: up to RARE_LEXEMES, rarest
    first, while the messages they are in stay within TEXT_ROW_BUDGET (the cost of ranking
    them; the rarest one is always kept). A small workspace so keeps words BM25 ranks on that
    are in many of its messages; a large one its rare words. Unknown ones (ndoc 0) may still
    match messages not counted yet, so they count as rarest."""
    chosen, rows = [], 0
    for i, lx in enumerate(lexemes[:RARE_LEXEMES]):
        rows += lx.ndoc
        if i and rows > TEXT_ROW_BUDGET:
            break
        chosen.append(lx)
    return {lx.lexeme: math.log(1 + (max(lx.docs, 1) - lx.ndoc + 0.5) / (lx.ndoc + 0.5))
            for lx in chosen}


def named_speakers(query: str, scored: list[Candidate]) -> set[str]:
    """The candidates' speakers the query names: every word of the peer id (as the index
    splits it: `mary_ann` is "mary" and "ann") is a word of the query."""
    words = set(lexeme_words.tokens(query))
    return {p for p in {c.peer_id for c in scored}
            if (parts := lexeme_words.tokens(p.replace("_", " "))) and set(parts) <= words}


def fuse(scored: list[Candidate], lexemes: list[QueryLexeme]) -> dict[str, float]:
    """score = w * bm25 / max(bm25) + (1 - w) * min-max(cosine) (+ the time bonus);
    unembedded rows get the lowest cosine of the pool."""
    bm = {c.message_id: store.bm25(c.terms, c.length, lexemes) for c in scored}
    top_bm = max(bm.values(), default=0.0) or 1.0
    cosines = [c.cosine for c in scored if c.cosine is not None]
    low, high = (min(cosines), max(cosines)) if cosines else (0.0, 1.0)
    span = (high - low) or 1.0
    return {
        c.message_id: TEXT_WEIGHT * bm[c.message_id] / top_bm + (1 - TEXT_WEIGHT) * (
            ((c.cosine if c.cosine is not None else low) - low) / span)
        + (TIME_WEIGHT if c.in_window else 0.0)
        for c in scored
    }


def lift_neighbours(scored: list[Candidate], scores: dict[str, float]) -> dict[str, float]:
    """Each message's score raised to NEIGHBOUR_SHARE of its best neighbour's (the messages
    just before and after it in its session, when they were scored)."""
    at = {(c.session_id, c.seq): scores[c.message_id] for c in scored}
    return {c.message_id: max(scores[c.message_id], NEIGHBOUR_SHARE * max(
        at.get((c.session_id, c.seq - 1), 0.0), at.get((c.session_id, c.seq + 1), 0.0)))
        for c in scored}


def favour_named_speakers(scored: list[Candidate], scores: dict[str, float],
                          query: str) -> dict[str, float]:
    """SPEAKER_WEIGHT more for the messages of a speaker the query names: a question about
    someone is mostly answered by their own words (on the LoCoMo subset 96% of the evidence
    of a question naming one speaker is that speaker's). Added after the neighbours' lift,
    so that the other speaker's replies are not raised with it."""
    speakers = named_speakers(query, scored)
    if not speakers:
        return scores
    return {c.message_id: scores[c.message_id] + (
        SPEAKER_WEIGHT if c.peer_id in speakers else 0.0) for c in scored}


async def search_messages(pool: asyncpg.Pool, embedder: Embedder, scope: Scope, query: str,
                          filters: Json | None, limit: int, *,
                          vector: Vector | Awaitable[Vector] | None = None,
                          boundary: frozenset[str] | None = None) -> list[Hit]:
    """`vector`: the query's embedding when the caller already has it (or a future of it).
    `boundary`: only these sessions' messages (a scope's, domain/scopes.py; None: any)."""
    filters = store_filters.boundary_filter(filters, None if boundary is None
                                            else sorted(boundary))
    n = max(CANDIDATES, limit * 4)
    # The query is embedded (in a thread) while the text arm runs in the database.
    embedding = asyncio.ensure_future(embedder.embed_one(query) if vector is None
                                      else _ready(vector))
    try:
        async with transaction(pool) as conn:
            # Everything that does not need the query's vector runs while it is computed.
            lexemes = await store.query_lexemes(conn, scope.workspace_id, query)
            time = when.window(query)
            text_ids = await store.text_candidates(conn, scope, filters,
                                                   candidate_weights(lexemes), time, n)
            exact = await store.plan_vector_scan(conn, scope, n)
            scored = await store.score_candidates(conn, scope, filters, await embedding,
                                                  text_ids, n, exact, time)
            if not scored:
                return []
            scores = favour_named_speakers(
                scored, lift_neighbours(scored, fuse(scored, lexemes)), query)
            best = sorted(scores, key=lambda i: -scores[i])[:limit]
            rows = await store.messages_by_id(conn, scope.workspace_id, best)
    finally:
        if not embedding.done():
            embedding.cancel()
    # A message deleted since it was scored is left out.
    return [Hit(rows[i], scores[i]) for i in best if i in rows]
