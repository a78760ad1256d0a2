"""Writing messages: one transaction stores them, joins their authors to the session, adds
them to the embedding backlog, enqueues the background work they cause and tells watchers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg

from honcho_grpc.domain.config import effective
from honcho_grpc.domain.events import MESSAGES_CREATED
from honcho_grpc.settings import Settings
from honcho_grpc.store import events, members, queue, resources
from honcho_grpc.store import messages as store
from honcho_grpc.store.messages import NewMessage
from honcho_grpc.store.queue import Job
from honcho_grpc.work_units import (
    RepresentationPayload,
    SummaryPayload,
    SummaryType,
    TaskType,
    representation_key,
    summary_key,
)

# A stored message as enqueueing reads it: a full row, or an import's id, seq, peer and
# configuration (store.copy_messages).
Row: TypeAlias = asyncpg.Record | Mapping[str, Any]


async def write_messages(conn: asyncpg.Connection, settings: Settings, workspace_id: str,
                         session_id: str, batch: Sequence[NewMessage]) -> list[asyncpg.Record]:
    """Store a batch atomically (the caller owns the transaction); returns the rows."""
    first_seq, session_config = await _open_batch(conn, workspace_id, session_id, batch)
    rows = await store.insert_messages(conn, workspace_id, session_id, first_seq, list(batch))
    await _follow_up(conn, settings, workspace_id, session_id, rows, session_config)
    return rows


async def import_messages(conn: asyncpg.Connection, settings: Settings, workspace_id: str,
                          session_id: str, batch: Sequence[NewMessage]) -> None:
    """write_messages for bulk loads, which answer with counts: the messages are copied in
    (binary COPY), and nothing is read back."""
    first_seq, session_config = await _open_batch(conn, workspace_id, session_id, batch)
    rows = await store.copy_messages(conn, workspace_id, session_id, first_seq, list(batch))
    await _follow_up(conn, settings, workspace_id, session_id, rows, session_config)


async def _open_batch(conn: asyncpg.Connection, workspace_id: str, session_id: str,
                      batch: Sequence[NewMessage]) -> tuple[int, dict[str, Any]]:
    """Workspace, session, authors and membership exist; the batch's sequence numbers are
    taken. Returns the first one and the session's configuration."""
    await resources.ensure_workspace(conn, workspace_id)
    await resources.ensure_session(conn, workspace_id, session_id)
    authors = [m.peer_id for m in batch]
    await resources.ensure_peers(conn, workspace_id, authors)
    await members.join_authors(conn, workspace_id, session_id, authors)
    return await store.reserve_sequence(conn, workspace_id, session_id, len(batch))


async def _follow_up(conn: asyncpg.Connection, settings: Settings, workspace_id: str,
                     session_id: str, rows: Sequence[Row], session_config: dict[str, Any]) -> None:
    """The embedding backlog and the background jobs of stored messages."""
    await store.add_to_embedding_backlog(conn, workspace_id, [r["message_id"] for r in rows])
    await queue.notify_embedder(conn)
    workspace_config = await conn.fetchval(
        "SELECT configuration FROM workspaces WHERE workspace_id = $1", workspace_id)
    jobs = await _jobs_for(conn, settings, workspace_id, session_id, rows, workspace_config,
                           session_config)
    await queue.enqueue(conn, workspace_id, jobs)
    await queue.hold_for_batch(
        conn, workspace_id,
        [j.work_unit_key for j in jobs if j.task_type == TaskType.REPRESENTATION],
        wait_seconds=settings.queue.batch_wait_seconds,
        min_tokens=settings.queue.batch_min_tokens)
    await announce_created(conn, workspace_id, session_id, rows)


async def announce_created(conn: asyncpg.Connection, workspace_id: str, session_id: str,
                           rows: Sequence[Row]) -> None:
    """`messages.created` for watchers: one event per stored batch (a CreateMessages call, an
    import chunk, a cloned session) with its count, sequence range, authors (10 at most) and
    the ids of its first 20 messages; `peer_id` is the author when there is only one."""
    if not rows:
        return
    ordered = sorted(rows, key=lambda r: int(r["seq"]))
    peers = sorted({r["peer_id"] for r in rows})
    await events.emit(conn, MESSAGES_CREATED, workspace_id, session_id=session_id,
                      peer_id=peers[0] if len(peers) == 1 else "", peers=peers[:10],
                      data={"count": len(rows), "first_seq": ordered[0]["seq"],
                            "last_seq": ordered[-1]["seq"],
                            "message_ids": [r["message_id"] for r in ordered[:20]]})


async def _jobs_for(conn: asyncpg.Connection, settings: Settings, workspace_id: str,
                    session_id: str, rows: Sequence[Row],
                    workspace_config: dict[str, Any], session_config: dict[str, Any]) -> list[Job]:
    """Representation jobs (who observes each sender) and summary jobs (every N messages)."""
    members_ = await members.observation_settings(conn, workspace_id, session_id)
    watchers = [m["peer_id"] for m in members_ if m["active"] and m["observe_others"]]
    observed_ok = {m["peer_id"]: m["observe_me"] for m in members_}
    jobs: list[Job] = []
    # Most messages carry no configuration of their own: resolve the session's once.
    inherited = effective(settings, workspace_config, session_config, None)
    for row in rows:
        config = (effective(settings, workspace_config, session_config, row["configuration"])
                  if row["configuration"] else inherited)
        sender = row["peer_id"]
        if config.reasoning_enabled and observed_ok.get(sender, True):
            # The sender and every member observing others (how many may is checked where
            # memberships are set: APP_SESSION_OBSERVERS_LIMIT).
            observers = [sender] + [w for w in watchers if w != sender]
            jobs.append(Job(
                task_type=TaskType.REPRESENTATION, session_id=session_id,
                work_unit_key=representation_key(workspace_id, session_id, sender),
                payload=RepresentationPayload(
                    message_id=row["message_id"], seq=row["seq"], observed=sender,
                    observers=observers,
                    custom_instructions=config.custom_instructions),
            ))
        if not config.summary_enabled:
            continue
        tiers: tuple[tuple[SummaryType, int], ...] = (("short", config.short_every),
                                                      ("long", config.long_every))
        for kind, every in tiers:
            if every > 0 and row["seq"] % every == 0:
                jobs.append(Job(
                    task_type=TaskType.SUMMARY, session_id=session_id,
                    work_unit_key=summary_key(workspace_id, session_id, kind),
                    payload=SummaryPayload(summary_type=kind, message_id=row["message_id"],
                                           seq=row["seq"], every=every),
                ))
    return jobs
