"""Reads and writes shared by the task handlers (psycopg, inside or outside a transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from honcho_grpc.domain.config import resolve
from honcho_grpc.settings import Settings
from honcho_grpc.work_units import dream_key
from honcho_grpc.worker import events
from honcho_grpc.worker.db import Conn
from honcho_grpc.worker.queue import enqueue


@dataclass(frozen=True)
class Features:
    """The settings a task needs, resolved session > workspace > server settings."""

    peer_card_create: bool
    dream_enabled: bool


async def features(conn: Conn, settings: Settings, workspace_id: str,
                   session_id: str | None) -> Features:
    row = await (await conn.execute(
        "SELECT w.configuration AS ws, s.configuration AS sess FROM workspaces w "
        "LEFT JOIN sessions s ON s.workspace_id = w.workspace_id AND s.session_id = %s "
        "WHERE w.workspace_id = %s", (session_id, workspace_id))).fetchone()
    chain: tuple[dict[str, Any] | None, ...] = (row["sess"], row["ws"]) if row else ()
    return Features(
        peer_card_create=bool(resolve(("peer_card", "create"), *chain,
                                      default=settings.peer_card.create)),
        dream_enabled=bool(resolve(("dream", "enabled"), *chain,
                                   default=settings.dream.enabled)),
    )


def transcript_line(row: dict[str, Any]) -> str:
    """'YYYY-MM-DD HH:MM:SS speaker: text', the format every prompt uses."""
    return f"{row['created_at']:%Y-%m-%d %H:%M:%S} {row['peer_id']}: {row['content']}"


async def peer_card(conn: Conn, workspace_id: str, observer: str,
                    observed: str) -> list[str] | None:
    row = await (await conn.execute(
        "SELECT entries FROM peer_cards WHERE workspace_id = %s AND observer_id = %s "
        "AND observed_id = %s", (workspace_id, observer, observed))).fetchone()
    return list(row["entries"]) if row else None


async def save_peer_card(conn: Conn, workspace_id: str, observer: str, observed: str,
                         entries: list[str], old: list[str] | None) -> None:
    """Store a card the worker derived, and tell watchers, if it changed."""
    if entries == (old or []) or not entries:
        return
    await conn.execute(
        "INSERT INTO peer_cards (workspace_id, observer_id, observed_id, entries) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id, observer_id, observed_id) "
        "DO UPDATE SET entries = EXCLUDED.entries, updated_at = now()",
        (workspace_id, observer, observed, entries))
    await events.emit(conn, events.PEER_CARD_UPDATED, workspace_id, peer_id=observed,
                      peers=[observer], data={"observer_id": observer, "observed_id": observed,
                                              "entries": len(entries)})


async def live_peers(conn: Conn, workspace_id: str, peer_ids: list[str]) -> list[str]:
    """The peers that still exist, locked against deletion until the transaction ends (so a
    concurrent DeletePeer cascades over what we write rather than racing it)."""
    rows = await (await conn.execute(
        "SELECT peer_id FROM peers WHERE workspace_id = %s AND peer_id = ANY(%s) "
        "FOR KEY SHARE", (workspace_id, peer_ids))).fetchall()
    alive = {r["peer_id"] for r in rows}
    return [p for p in peer_ids if p in alive]


async def maybe_schedule_dream(conn: Conn, settings: Settings, workspace_id: str,
                               observer: str, observed: str, session_id: str | None) -> bool:
    """Queue a dream when enough new explicit conclusions piled up since the last one."""
    row = await (await conn.execute(
        """
        SELECT (SELECT count(*) FROM conclusions c WHERE c.workspace_id = %(ws)s
                  AND c.observer_id = %(obs)s AND c.observed_id = %(obd)s
                  AND c.level = 'explicit' AND c.invalidated_at IS NULL) AS n,
               d.last_dream_count, d.last_dream_at > now() - %(gap)s * interval '1 second'
                 AS recent
        FROM (SELECT 1) one LEFT JOIN dream_state d ON d.workspace_id = %(ws)s
          AND d.observer_id = %(obs)s AND d.observed_id = %(obd)s
        """, {"ws": workspace_id, "obs": observer, "obd": observed,
              "gap": settings.dream.min_interval_seconds})).fetchone()
    if row is None or row["recent"]:
        return False
    if row["n"] - (row["last_dream_count"] or 0) < settings.dream.conclusion_threshold:
        return False
    return await enqueue(conn, workspace_id, "dream", dream_key(workspace_id, observer, observed),
                         {"observer": observer, "observed": observed, "dream_type": "omni",
                          "session_id": session_id}, None, unique_pending=True)
