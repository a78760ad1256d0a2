"""SQL for the dream state of a pair: when it last dreamt and how many explicit conclusions
it had then (the next dream is due after enough new ones; honcho_grpc/domain/dreams.py)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class DreamState:
    explicit: int  # live explicit conclusions of the pair now
    explicit_at_last_dream: int  # 0 when it never dreamt
    dreamt_within: bool  # dreamt within the interval asked about


async def dream_state(conn: asyncpg.Connection, workspace_id: str, observer_id: str,
                      observed_id: str, within_seconds: float) -> DreamState:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM conclusions c WHERE c.workspace_id = $1
                  AND c.observer_id = $2 AND c.observed_id = $3
                  AND c.level = 'explicit' AND c.invalidated_at IS NULL) AS n,
               d.last_dream_count,
               coalesce(d.last_dream_at > now() - $4 * interval '1 second', false) AS recent
        FROM (SELECT 1) one LEFT JOIN dream_state d ON d.workspace_id = $1
          AND d.observer_id = $2 AND d.observed_id = $3
        """, workspace_id, observer_id, observed_id, within_seconds)
    return DreamState(int(row["n"]), int(row["last_dream_count"] or 0), bool(row["recent"]))


async def remember_dream(conn: asyncpg.Connection, workspace_id: str, observer_id: str,
                         observed_id: str) -> None:
    """The pair dreamt now, with as many explicit conclusions as it has now."""
    await conn.execute(
        """
        INSERT INTO dream_state (workspace_id, observer_id, observed_id, last_dream_at,
                                 last_dream_count)
        SELECT $1, $2, $3, now(), count(*) FROM conclusions
        WHERE workspace_id = $1 AND observer_id = $2 AND observed_id = $3
          AND level = 'explicit' AND invalidated_at IS NULL
        ON CONFLICT (workspace_id, observer_id, observed_id) DO UPDATE
        SET last_dream_at = EXCLUDED.last_dream_at,
            last_dream_count = EXCLUDED.last_dream_count
        """, workspace_id, observer_id, observed_id)
