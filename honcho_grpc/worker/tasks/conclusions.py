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


async def _exact_match(conn: Conn, pair: Pair, item: NewConclusion) -> str | None:
    row = await (await conn.execute(
        r"""
        SELECT conclusion_id FROM conclusions
        WHERE workspace_id = %s AND observer_id = %s AND observed_id = %s AND level = %s
          AND invalidated_at IS NULL
          AND md5(lower(regexp_replace(btrim(content), '\s+', ' ', 'g')))
              = md5(lower(regexp_replace(btrim(%s::text), '\s+', ' ', 'g')))
        LIMIT 1
        """, (pair.workspace_id, pair.observer_id, pair.observed_id, item.level, item.content)
    )).fetchone()
    return row["conclusion_id"] if row else None


async def _semantic_match(conn: Conn, pair: Pair, item: NewConclusion) -> str | None:
    if item.embedding is None:
        return None
    # "+ 0" keeps the planner off the global HNSW index: its approximate top-k, filtered to
    # one pair afterwards, can miss the pair's rows. The pair's rows are scanned exactly.
    row = await (await conn.execute(
        """
        SELECT conclusion_id FROM conclusions
        WHERE workspace_id = %(ws)s AND observer_id = %(obs)s AND observed_id = %(obd)s
          AND level = %(level)s AND invalidated_at IS NULL AND embedding IS NOT NULL
          AND (embedding <=> %(vec)s) <= %(max)s
        ORDER BY (embedding <=> %(vec)s) + 0 LIMIT 1
        """, {"ws": pair.workspace_id, "obs": pair.observer_id, "obd": pair.observed_id,
              "level": item.level, "vec": item.embedding, "max": SEMANTIC_DUPLICATE_DISTANCE}
    )).fetchone()
    return row["conclusion_id"] if row else None


async def write(conn: Conn, pair: Pair, items: list[NewConclusion], *, model: str | None,
                metadata: dict[str, Any]) -> Written:
    """Store the new items and reinforce the repeated ones."""
    kept, repeats = _unique_in_batch(items)
    out = Written()
    bumps: Counter[str] = Counter()
    fresh: list[tuple[str, NewConclusion]] = []
    targets: list[str] = []  # per kept item: the conclusion it became or repeats
    for item in kept:
        existing = await _exact_match(conn, pair, item) or await _semantic_match(conn, pair, item)
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
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())
            """,
            [(pair.workspace_id, cid, pair.observer_id, pair.observed_id, c.session_id,
              c.content, c.level, c.embedding, model if c.embedding is not None else None,
              c.premise_ids, c.source_message_ids, Jsonb(metadata)) for cid, c in fresh])


async def _bump(conn: Conn, workspace_id: str, bumps: Counter[str]) -> None:
    if not bumps:
        return
    await conn.execute(
        "UPDATE conclusions c SET times_derived = c.times_derived + d.n "
        "FROM unnest(%s::text[], %s::int[]) AS d(id, n) "
        "WHERE c.workspace_id = %s AND c.conclusion_id = d.id",
        (list(bumps), list(bumps.values()), workspace_id))


async def already_written(conn: Conn, pair: Pair, queue_ids: list[int]) -> bool:
    """Whether conclusions from these queue rows exist for the pair (a replay)."""
    row = await (await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM conclusions WHERE workspace_id = %s AND observer_id = %s "
        "AND observed_id = %s AND internal_metadata -> 'queue_ids' ?| %s::text[]) AS done",
        (pair.workspace_id, pair.observer_id, pair.observed_id, [str(i) for i in queue_ids])
    )).fetchone()
    return bool(row and row["done"])
