"""Hybrid message search: pgvector HNSW and Postgres full text, fused.

Messages not yet embedded are still found by the full-text arm, so a search right after
CreateMessages sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from honcho_grpc.store import filters as f
from honcho_grpc.store.messages import M_COLUMNS

RRF_K = 60
OVERSAMPLE = 4


@dataclass
class Scope:
    workspace_id: str
    session_id: str = ""
    peer_id: str = ""


@dataclass
class Hit:
    row: asyncpg.Record
    score: float


def _where(scope: Scope, filters: dict[str, Any] | None, params: f.Params) -> str:
    clauses = [f"m.workspace_id = {params.add(scope.workspace_id)}"]
    if scope.session_id:
        clauses.append(f"m.session_id = {params.add(scope.session_id)}")
    if scope.peer_id:
        clauses.append(f"m.peer_id = {params.add(scope.peer_id)}")
    clauses.append(f.compile_filter(filters, f.message_filters("m"), params))
    return " AND ".join(clauses)


async def _dense(conn: asyncpg.Connection, scope: Scope, filters: dict[str, Any] | None,
                 vector: np.ndarray, n: int) -> list[str]:
    params = f.Params()
    where = _where(scope, filters, params)
    q = params.add(vector)
    rows = await conn.fetch(
        f"SELECT m.message_id FROM message_embeddings e JOIN messages m "
        f"ON m.workspace_id = e.workspace_id AND m.message_id = e.message_id "
        f"WHERE e.workspace_id = {params.add(scope.workspace_id)} AND {where} "
        f"ORDER BY e.embedding <=> {q}::vector LIMIT {params.add(n)}",
        *params.values,
    )
    return [r["message_id"] for r in rows]


async def _text(conn: asyncpg.Connection, scope: Scope, filters: dict[str, Any] | None,
                query: str, n: int) -> list[str]:
    params = f.Params()
    where = _where(scope, filters, params)
    # Any query word may match (OR): questions rarely share every word with their answer.
    tsq = (f"(SELECT coalesce(to_tsquery('english', string_agg(lexeme, ' | ')), "
           f"''::tsquery) FROM unnest(to_tsvector('english', {params.add(query)})))")
    rows = await conn.fetch(
        f"SELECT m.message_id FROM messages m, {tsq} AS q(tsq) "
        f"WHERE {where} AND m.search_text @@ q.tsq "
        f"ORDER BY ts_rank_cd(m.search_text, q.tsq, 1) DESC, m.seq DESC "
        f"LIMIT {params.add(n)}",
        *params.values,
    )
    return [r["message_id"] for r in rows]


def fuse(rankings: list[list[str]], weights: list[float]) -> dict[str, float]:
    """Weighted reciprocal rank fusion."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, message_id in enumerate(ranking):
            scores[message_id] = scores.get(message_id, 0.0) + weight / (RRF_K + rank + 1)
    return scores


async def search_messages(pool: asyncpg.Pool, embedder: Any, scope: Scope, query: str,
                          filters: dict[str, Any] | None, limit: int) -> list[Hit]:
    vector = await embedder.embed_one(query)
    n = limit * OVERSAMPLE
    async with pool.acquire() as conn, conn.transaction():
        # Filtered HNSW scans keep going until enough rows pass the filter (pgvector 0.8).
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute("SET LOCAL hnsw.ef_search = 100")
        dense = await _dense(conn, scope, filters, vector, n)
        text = await _text(conn, scope, filters, query, n)
        scores = fuse([text, dense], [1.0, 1.0])
        best = sorted(scores, key=lambda k: -scores[k])[:limit]
        rows = await conn.fetch(
            f"SELECT {M_COLUMNS} FROM messages m WHERE m.workspace_id = $1 "
            "AND m.message_id = ANY($2::text[])", scope.workspace_id, best)
    by_id = {r["message_id"]: r for r in rows}
    return [Hit(by_id[m], scores[m]) for m in best if m in by_id]
