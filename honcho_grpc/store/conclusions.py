"""SQL for conclusions: insert, list, semantic query, delete (with what was built on them)."""

from __future__ import annotations

import numpy as np

from honcho_grpc.model import Conclusion, Json, NewConclusion, Page
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, every

COLUMNS = columns(Conclusion)
C_COLUMNS = columns(Conclusion, "c")


async def insert_conclusions(conn: Conn, workspace_id: str,
                             items: list[NewConclusion]) -> list[Conclusion]:
    rows = []
    # executemany cannot RETURN; batches are <= 100, so one statement per row is fine here.
    for c in items:
        rows.append(await conn.fetchrow(
            f"""
            INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id,
                session_id, content, level, embedding, model, premise_ids, source_message_ids,
                internal_metadata)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            RETURNING {COLUMNS}
            """,
            workspace_id, c.conclusion_id, c.observer_id, c.observed_id, c.session_id,
            c.content, c.level, c.embedding, c.model, c.premise_ids, c.source_message_ids,
            c.internal_metadata,
        ))
    return every(Conclusion, rows)


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
