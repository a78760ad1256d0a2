"""Writing derived conclusions without duplicates.

A new conclusion that repeats a live one of the same pair and level -- exactly (after trimming,
lower-casing and collapsing whitespace) or nearly (cosine distance <= 0.05) -- is not stored
again: the existing one's `times_derived` goes up instead, which is how repetition reinforces
what is known. Runs inside the fenced completion transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from honcho_grpc.ids import new_id
from honcho_grpc.worker.db import Conn

SEMANTIC_DUPLICATE_DISTANCE = 0.05


@dataclass
class NewConclusion:
    content: str
    level: str
    embedding: np.ndarray | None
    session_id: str | None = None
    premise_ids: list[str] = field(default_factory=list)
    source_message_ids: list[str] = field(default_factory=list)


@dataclass
class Written:
    created: list[str] = field(default_factory=list)
    reinforced: list[str] = field(default_factory=list)


@dataclass
class Pair:
    workspace_id: str
    observer_id: str
    observed_id: str


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _unique_in_batch(items: list[NewConclusion]) -> tuple[list[NewConclusion], list[int]]:
    """Drop repeats inside the batch itself; returns survivors and, per dropped item, the index
    of the survivor it repeats."""
    kept: list[NewConclusion] = []
    repeats: list[int] = []
    for item in items:
        match = next((i for i, k in enumerate(kept) if k.level == item.level and (
            _norm(k.content) == _norm(item.content) or _close(k.embedding, item.embedding))),
            None)
        if match is None:
            kept.append(item)
        else:
            repeats.append(match)
    return kept, repeats


def _close(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return False
    return float(1.0 - np.dot(a, b)) <= SEMANTIC_DUPLICATE_DISTANCE


async def _exact_matches(conn: Conn, pair: Pair, level: str,
                         contents: list[str]) -> dict[int, str]:
    """Index (0-based) of each content -> a live conclusion with the same normalised text."""
    rows = await (await conn.execute(
        r"""
        SELECT f.i - 1 AS i, m.conclusion_id
        FROM unnest(%(contents)s::text[]) WITH ORDINALITY AS f(content, i)
        CROSS JOIN LATERAL (
            SELECT conclusion_id FROM conclusions
            WHERE workspace_id = %(ws)s AND observer_id = %(obs)s AND observed_id = %(obd)s
              AND level = %(level)s AND invalidated_at IS NULL
              AND md5(lower(regexp_replace(btrim(content), '\s+', ' ', 'g')))
                  = md5(lower(regexp_replace(btrim(f.content), '\s+', ' ', 'g')))
            LIMIT 1) m
        """, {"contents": contents, "ws": pair.workspace_id, "obs": pair.observer_id,
              "obd": pair.observed_id, "level": level})).fetchall()
    return {r["i"]: r["conclusion_id"] for r in rows}


async def _semantic_matches(conn: Conn, pair: Pair, level: str,
                            vectors: list[np.ndarray]) -> dict[int, str]:
    """Index of each vector -> the nearest live conclusion within the duplicate distance.
    "+ 0" keeps the planner off the global HNSW index: its approximate top-k, filtered to one
    pair afterwards, can miss the pair's rows. The pair's rows are scanned exactly."""
    rows = await (await conn.execute(
        """
        SELECT f.i - 1 AS i, m.conclusion_id
        FROM unnest(%(vecs)b::vector[]) WITH ORDINALITY AS f(v, i)
        CROSS JOIN LATERAL (
            SELECT conclusion_id FROM conclusions
            WHERE workspace_id = %(ws)s AND observer_id = %(obs)s AND observed_id = %(obd)s
              AND level = %(level)s AND invalidated_at IS NULL AND embedding IS NOT NULL
              AND (embedding <=> f.v) <= %(max)s
            ORDER BY (embedding <=> f.v) + 0 LIMIT 1) m
        """, {"vecs": vectors, "ws": pair.workspace_id, "obs": pair.observer_id,
              "obd": pair.observed_id, "level": level, "max": SEMANTIC_DUPLICATE_DISTANCE}
    )).fetchall()
    return {r["i"]: r["conclusion_id"] for r in rows}


async def _existing(conn: Conn, pair: Pair, items: list[NewConclusion]) -> list[str | None]:
    """Per item, the live conclusion it repeats (exactly, else nearly), if any."""
    found: list[str | None] = [None] * len(items)
    for level in sorted({i.level for i in items}):
        idx = [n for n, i in enumerate(items) if i.level == level]
        exact = await _exact_matches(conn, pair, level, [items[n].content for n in idx])
        for k, cid in exact.items():
            found[idx[k]] = cid
        rest = [n for n in idx if found[n] is None and items[n].embedding is not None]
        if rest:
            near = await _semantic_matches(conn, pair, level,
                                           [items[n].embedding for n in rest])  # type: ignore[misc]
            for k, cid in near.items():
                found[rest[k]] = cid
    return found


async def write(conn: Conn, pair: Pair, items: list[NewConclusion], *, model: str | None,
                metadata: dict[str, Any]) -> Written:
    """Store the new items and reinforce the repeated ones."""
    kept, repeats = _unique_in_batch(items)
    out = Written()
    bumps: Counter[str] = Counter()
    fresh: list[tuple[str, NewConclusion]] = []
    targets: list[str] = []  # per kept item: the conclusion it became or repeats
    for item, existing in zip(kept, await _existing(conn, pair, kept), strict=True):
        if existing:
            bumps[existing] += 1
            targets.append(existing)
        else:
            fresh.append((new_id(), item))
            targets.append(fresh[-1][0])
    for index in repeats:  # a repeat inside the batch reinforces what its twin became
        bumps[targets[index]] += 1
    await _insert(conn, pair, fresh, model, metadata)
    await _bump(conn, pair.workspace_id, bumps)
    out.created = [cid for cid, _ in fresh]
    out.reinforced = list(bumps)
    return out


async def _insert(conn: Conn, pair: Pair, fresh: list[tuple[str, NewConclusion]],
                  model: str | None, metadata: dict[str, Any]) -> None:
    """clock_timestamp(), not now(): the rows of one batch keep the order of the messages
    they came from, which is what "newer" means when a dream supersedes."""
    if not fresh:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id,
                session_id, content, level, embedding, model, premise_ids, source_message_ids,
                internal_metadata, created_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %b, %s, %s, %s, %s, clock_timestamp())
            """,
            [(pair.workspace_id, cid, pair.observer_id, pair.observed_id, c.session_id,
              c.content, c.level, c.embedding, model if c.embedding is not None else None,
              c.premise_ids, c.source_message_ids, Jsonb(metadata)) for cid, c in fresh])


async def _bump(conn: Conn, workspace_id: str, bumps: Counter[str]) -> None:
    if not bumps:
        return
    # In id order: two transactions bumping the same rows never wait on each other in a cycle.
    ids = sorted(bumps)
    await conn.execute(
        "SELECT 1 FROM conclusions WHERE workspace_id = %s AND conclusion_id = ANY(%s) "
        "ORDER BY conclusion_id FOR NO KEY UPDATE", (workspace_id, ids))
    await conn.execute(
        "UPDATE conclusions c SET times_derived = c.times_derived + d.n "
        "FROM unnest(%s::text[], %s::int[]) AS d(id, n) "
        "WHERE c.workspace_id = %s AND c.conclusion_id = d.id",
        (ids, [bumps[i] for i in ids], workspace_id))


async def already_written(conn: Conn, pair: Pair, queue_ids: list[int]) -> bool:
    """Whether conclusions from these queue rows exist for the pair (a replay)."""
    row = await (await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM conclusions WHERE workspace_id = %s AND observer_id = %s "
        "AND observed_id = %s AND internal_metadata -> 'queue_ids' ?| %s::text[]) AS done",
        (pair.workspace_id, pair.observer_id, pair.observed_id, [str(i) for i in queue_ids])
    )).fetchone()
    return bool(row and row["done"])
