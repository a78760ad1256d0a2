"""SQL for conclusions: insert, list, semantic query, delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
import numpy as np

from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import Page, binding, keyset_page

Conn: TypeAlias = asyncpg.Connection

COLUMNS = ("workspace_id, conclusion_id, observer_id, observed_id, session_id, content, level, "
           "premise_ids, source_message_ids, times_derived, internal_metadata, created_at, "
           "invalidated_at, superseded_by")
C_COLUMNS = ", ".join(f"c.{c.strip()}" for c in COLUMNS.split(","))


@dataclass
class NewConclusion:
    conclusion_id: str
    observer_id: str
    observed_id: str
    session_id: str | None
    content: str
    embedding: np.ndarray | None
    model: str | None
    level: str = "explicit"
    premise_ids: list[str] = field(default_factory=list)
    source_message_ids: list[str] = field(default_factory=list)
    internal_metadata: dict[str, Any] = field(default_factory=dict)


async def insert_conclusions(conn: Conn, workspace_id: str,
                             items: list[NewConclusion]) -> list[asyncpg.Record]:
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
    return rows


async def list_conclusions(conn: Conn | asyncpg.Pool, workspace_id: str,
                           filters: dict[str, Any] | None, include_invalid: bool,
                           reverse: bool, page_size: int, token: str) -> Page:
    params = f.Params()
    where = f"c.workspace_id = {params.add(workspace_id)} AND " + f.compile_filter(
        filters, f.conclusion_filters("c"), params)
    if not include_invalid:
        where += " AND c.invalidated_at IS NULL"
    # Newest first by default, as callers usually want what was learned last.
    return await keyset_page(
        conn, select=f"SELECT {C_COLUMNS} FROM conclusions c", where=where, params=params,
        order=("c.created_at", "c.conclusion_id"), reverse=not reverse, page_size=page_size,
        token=token, bound_to=binding("conclusions", workspace_id, filters, include_invalid,
                                      reverse),
    )


async def query_conclusions(conn: Conn | asyncpg.Pool, workspace_id: str, observer_id: str,
                            observed_id: str, embedding: np.ndarray, top_k: int,
                            max_distance: float, filters: dict[str, Any] | None,
                            levels: list[str] | None = None) -> list[asyncpg.Record]:
    """Nearest valid conclusions of one (observer, observed) pair, with their distance."""
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
    sql = (f"SELECT {C_COLUMNS}, {distance} AS distance FROM conclusions c "
           f"WHERE {' AND '.join(where)} ORDER BY {distance} LIMIT {params.add(top_k)}")
    return list(await conn.fetch(sql, *params.values))


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
