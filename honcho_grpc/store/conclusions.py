"""SQL for conclusions: insert, list, semantic query, delete (with what was built on them)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pgvector import Vector

from honcho_grpc.model import Conclusion, Json, NewConclusion, Page
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, every

COLUMNS = columns(Conclusion)
C_COLUMNS = columns(Conclusion, "c")


# clock_timestamp(), not now(): the rows of one call keep the order they were given in,
# which is what "newer" means when a dream supersedes one conclusion by another.
INSERT = f"""
INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, session_id,
    content, level, embedding, model, premise_ids, source_message_ids, internal_metadata,
    created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
        coalesce($13::timestamptz, clock_timestamp()))
RETURNING {COLUMNS}
"""


def _insert_args(workspace_id: str, c: NewConclusion) -> tuple[Any, ...]:
    return (workspace_id, c.conclusion_id, c.observer_id, c.observed_id, c.session_id,
            c.content, c.level, c.embedding, c.model, c.premise_ids, c.source_message_ids,
            c.internal_metadata, c.created_at)


async def insert_conclusions(conn: Conn, workspace_id: str,
                             items: list[NewConclusion]) -> list[Conclusion]:
    rows = []
    # executemany cannot RETURN; batches are <= 100, so one statement per row is fine here.
    for c in items:
        rows.append(await conn.fetchrow(INSERT, *_insert_args(workspace_id, c)))
    return every(Conclusion, rows)


async def add_conclusions(conn: Conn, workspace_id: str, items: list[NewConclusion]) -> None:
    """insert_conclusions when the rows are not read back: one round trip for the lot."""
    if items:
        await conn.executemany(INSERT, [_insert_args(workspace_id, c) for c in items])


async def list_conclusions(conn: Executor, workspace_id: str, filters: Json | None,
                           include_invalid: bool, reverse: bool, page_size: int,
                           token: str) -> Page[Conclusion]:
    params = f.Params()
    where = f"c.workspace_id = {params.add(workspace_id)} AND " + f.compile_filter(
        filters, f.conclusion_filters("c"), params)
    if not include_invalid:
        where += " AND c.invalidated_at IS NULL"
    # Newest first by default, as callers usually want what was learned last.
    return await keyset_page(
        conn, Conclusion, select=f"SELECT {C_COLUMNS} FROM conclusions c", where=where,
        params=params, order=("c.created_at", "c.conclusion_id"), reverse=not reverse,
        page_size=page_size, token=token,
        bound_to=binding("conclusions", workspace_id, filters, include_invalid, reverse),
    )


async def query_conclusions(conn: Executor, workspace_id: str, observer_id: str,
                            observed_id: str, embedding: np.ndarray, top_k: int,
                            max_distance: float, filters: Json | None,
                            levels: list[str] | None = None) -> list[Conclusion]:
    """Nearest valid conclusions of one (observer, observed) pair, nearest first."""
    params = f.Params()
    where = [
        f"c.workspace_id = {params.add(workspace_id)}",
        f"c.observer_id = {params.add(observer_id)}",
        f"c.observed_id = {params.add(observed_id)}",
        "c.invalidated_at IS NULL", "c.embedding IS NOT NULL",
        f.compile_filter(filters, f.conclusion_filters("c"), params),
    ]
    if levels:
        where.append(f"c.level = ANY({params.add(levels)}::text[])")
    vec = params.add(embedding)
    distance = f"(c.embedding <=> {vec}::vector)"
    if max_distance > 0:
        where.append(f"{distance} <= {params.add(max_distance)}::double precision")
    sql = (f"SELECT {C_COLUMNS} FROM conclusions c "
           f"WHERE {' AND '.join(where)} ORDER BY {distance} LIMIT {params.add(top_k)}")
    return every(Conclusion, await conn.fetch(sql, *params.values))


async def delete_conclusion(conn: Conn, workspace_id: str, conclusion_id: str) -> bool:
    """Deletes the conclusion and, transitively, conclusions that used it as a premise."""
    status: str = await conn.execute(
        """
        WITH RECURSIVE doomed(conclusion_id) AS (
            SELECT $2::text
            UNION
            SELECT c.conclusion_id FROM conclusions c JOIN doomed d
              ON c.premise_ids @> ARRAY[d.conclusion_id]
            WHERE c.workspace_id = $1
        )
        DELETE FROM conclusions c USING doomed d
        WHERE c.workspace_id = $1 AND c.conclusion_id = d.conclusion_id
        """,
        workspace_id, conclusion_id,
    )
    return status != "DELETE 0"


# -- what de-duplicating derived conclusions asks (honcho_grpc/domain/derivation.py) -----------

async def exact_duplicates(conn: Conn, workspace_id: str, observer_id: str, observed_id: str,
                           level: str, contents: list[str]) -> dict[int, str]:
    """Index (0-based) of each content -> a live conclusion of the pair and level with the
    same text once trimmed, lower-cased and with whitespace collapsed (the expression of the
    conclusions_content_key index)."""
    rows = await conn.fetch(
        r"""
        SELECT f.i - 1 AS i, m.conclusion_id
        FROM unnest($5::text[]) WITH ORDINALITY AS f(content, i)
        CROSS JOIN LATERAL (
            SELECT conclusion_id FROM conclusions
            WHERE workspace_id = $1 AND observer_id = $2 AND observed_id = $3
              AND level = $4 AND invalidated_at IS NULL
              AND md5(lower(regexp_replace(btrim(content), '\s+', ' ', 'g')))
                  = md5(lower(regexp_replace(btrim(f.content), '\s+', ' ', 'g')))
            LIMIT 1) m
        """, workspace_id, observer_id, observed_id, level, contents)
    return {r["i"]: r["conclusion_id"] for r in rows}


async def near_duplicates(conn: Conn, workspace_id: str, observer_id: str, observed_id: str,
                          level: str, vectors: list[np.ndarray],
                          max_distance: float) -> dict[int, str]:
    """Index of each vector -> the nearest live conclusion of the pair and level within
    `max_distance` (cosine). "+ 0" keeps the planner off the global HNSW index: its
    approximate top-k, filtered to one pair afterwards, can miss the pair's rows. The pair's
    rows are scanned exactly."""
    rows = await conn.fetch(
        """
        SELECT f.i - 1 AS i, m.conclusion_id
        FROM unnest($5::vector[]) WITH ORDINALITY AS f(v, i)
        CROSS JOIN LATERAL (
            SELECT conclusion_id FROM conclusions
            WHERE workspace_id = $1 AND observer_id = $2 AND observed_id = $3
              AND level = $4 AND invalidated_at IS NULL AND embedding IS NOT NULL
              AND (embedding <=> f.v) <= $6
            ORDER BY (embedding <=> f.v) + 0 LIMIT 1) m
        """, workspace_id, observer_id, observed_id, level,
        # Wrapped: asyncpg would read a bare ndarray as one more array dimension.
        [Vector(v) for v in vectors], max_distance)
    return {r["i"]: r["conclusion_id"] for r in rows}


async def evidence(conn: Conn, workspace_id: str, ids: list[str]) -> dict[str, set[str]]:
    """Per conclusion, what it rests on: its premises and its source messages."""
    rows = await conn.fetch(
        "SELECT conclusion_id, premise_ids || source_message_ids AS cited FROM conclusions "
        "WHERE workspace_id = $1 AND conclusion_id = ANY($2::text[])", workspace_id, ids)
    return {r["conclusion_id"]: set(r["cited"] or ()) for r in rows}


async def reinforce(conn: Conn, workspace_id: str, counts: dict[str, int]) -> None:
    """Add `counts[id]` to each conclusion's times_derived."""
    if not counts:
        return
    # Locked in id order: two transactions bumping the same rows never wait on each other
    # in a cycle.
    ids = sorted(counts)
    await conn.execute(
        "SELECT 1 FROM conclusions WHERE workspace_id = $1 AND conclusion_id = ANY($2::text[]) "
        "ORDER BY conclusion_id FOR NO KEY UPDATE", workspace_id, ids)
    await conn.execute(
        "UPDATE conclusions c SET times_derived = c.times_derived + d.n "
        "FROM unnest($2::text[], $3::int[]) AS d(id, n) "
        "WHERE c.workspace_id = $1 AND c.conclusion_id = d.id",
        workspace_id, ids, [counts[i] for i in ids])


async def derived_from_queue_rows(conn: Conn, workspace_id: str, observer_id: str,
                                  observed_id: str, queue_ids: list[str]) -> bool:
    """Whether the pair has conclusions written by any of these queue rows (a replay)."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM conclusions WHERE workspace_id = $1 AND observer_id = $2 "
        "AND observed_id = $3 AND internal_metadata -> 'queue_ids' ?| $4::text[])",
        workspace_id, observer_id, observed_id, queue_ids))


async def supersede(conn: Conn, workspace_id: str, old_id: str, new_id: str) -> bool:
    """Invalidate `old_id` in favour of `new_id` (never deletes); False if it was not live."""
    status: str = await conn.execute(
        "UPDATE conclusions SET invalidated_at = now(), superseded_by = $3 "
        "WHERE workspace_id = $1 AND conclusion_id = $2 AND invalidated_at IS NULL",
        workspace_id, old_id, new_id)
    return status != "UPDATE 0"


async def delete_conclusions_derived_from(conn: Conn, workspace_id: str, *,
                                          session_id: str | None = None,
                                          message_ids: list[str] | None = None) -> int:
    """Delete the conclusions sourced from a session or from messages, and, transitively,
    every conclusion that has one of them as a premise."""
    if session_id is not None:
        seed = "c.session_id = $2"
        arg: str | list[str] = session_id
    else:
        seed = "c.source_message_ids && $2::text[]"
        arg = message_ids or []
    status: str = await conn.execute(
        f"""
        WITH RECURSIVE doomed(conclusion_id) AS (
            SELECT c.conclusion_id FROM conclusions c WHERE c.workspace_id = $1 AND {seed}
            UNION
            SELECT c.conclusion_id FROM conclusions c JOIN doomed d
              ON c.premise_ids @> ARRAY[d.conclusion_id]
            WHERE c.workspace_id = $1
        )
        DELETE FROM conclusions c USING doomed d
        WHERE c.workspace_id = $1 AND c.conclusion_id = d.conclusion_id
        """,
        workspace_id, arg,
    )
    return int(status.split()[-1])


async def without_embedding(conn: Executor, after: tuple[str, str],
                            limit: int) -> list[tuple[str, str, str]]:
    """(workspace, conclusion, content) of conclusions without a vector, in key order after
    `after`: the pages of a re-embedding."""
    rows = await conn.fetch(
        "SELECT workspace_id, conclusion_id, content FROM conclusions "
        "WHERE embedding IS NULL AND (workspace_id, conclusion_id) > ($1, $2) "
        "ORDER BY workspace_id, conclusion_id LIMIT $3", after[0], after[1], limit)
    return [(r["workspace_id"], r["conclusion_id"], r["content"]) for r in rows]


async def set_embeddings(conn: Executor, keys: list[tuple[str, str]], model: str,
                         vectors: list[np.ndarray]) -> None:
    await conn.execute(
        "UPDATE conclusions c SET embedding = u.v, model = $3 "
        "FROM unnest($1::text[], $2::text[], $4::vector[]) AS u(ws, id, v) "
        "WHERE c.workspace_id = u.ws AND c.conclusion_id = u.id",
        [k[0] for k in keys], [k[1] for k in keys], model, [Vector(v) for v in vectors])
