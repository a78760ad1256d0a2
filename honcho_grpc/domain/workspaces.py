"""Workspaces: the tenant every other resource lives in. Deleting one removes everything in
it, queued work included; its background work can be counted and a dream scheduled in it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

from honcho_grpc.domain import peers, sessions
from honcho_grpc.domain.idempotent import R, Retry, run_write
from honcho_grpc.domain.transactions import connection, transaction
from honcho_grpc.errors import not_found
from honcho_grpc.model import Json, Page, Workspace
from honcho_grpc.store import Conn, Executor, backlog, queue, workspaces
from honcho_grpc.store.backlog import BacklogStatus
from honcho_grpc.work_units import DreamPayload, DreamType


async def get_or_create(pool: asyncpg.Pool, workspace_id: str, metadata: Json,
                        configuration: Json) -> tuple[Workspace, bool]:
    async with connection(pool) as conn:
        return await workspaces.get_or_create_workspace(conn, workspace_id, metadata,
                                                        configuration)


async def get(db: Executor, workspace_id: str) -> Workspace:
    """The workspace, or NOT_FOUND."""
    found = await workspaces.get_workspace(db, workspace_id)
    if found is None:
        raise not_found("workspace", workspaceId=workspace_id)
    return found


async def list_workspaces(pool: asyncpg.Pool, filters: Json | None, reverse: bool,
                          page_size: int, token: str) -> Page[Workspace]:
    return await workspaces.list_workspaces(pool, filters, reverse, page_size, token)


async def update(pool: asyncpg.Pool, workspace_id: str, changes: Json) -> Workspace:
    found = await workspaces.update_workspace(pool, workspace_id, changes)
    if found is None:
        raise not_found("workspace", workspaceId=workspace_id)
    return found


async def delete(pool: asyncpg.Pool, workspace_id: str, retry: Retry[R]) -> R:
    """Everything in the workspace goes (foreign keys), its queued work too."""
    async def write(conn: Conn) -> R:
        if not await workspaces.delete_workspace(conn, workspace_id):
            raise not_found("workspace", workspaceId=workspace_id)
        return retry.response_type()

    return await run_write(pool, workspace_id, retry, write)


@dataclass
class QueueCounts:
    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0

    def add(self, status: str, n: int) -> None:
        setattr(self, status, getattr(self, status) + n)


@dataclass
class QueueStatus:
    """Derivation work (reasoning, summaries, dreams) by status: in total and per session
    (work of no session, such as dreams, counts in the total only); and the messages still
    waiting for their embedding."""

    totals: QueueCounts = field(default_factory=QueueCounts)
    sessions: dict[str, QueueCounts] = field(default_factory=lambda: defaultdict(QueueCounts))
    embedding: BacklogStatus = field(default_factory=lambda: BacklogStatus(0, 0.0))


async def queue_status(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                       observer_id: str, sender_id: str) -> QueueStatus:
    """Empty filters match everything."""
    status = QueueStatus()
    for session, state, n in await queue.derivation_status(pool, workspace_id, session_id,
                                                           observer_id, sender_id):
        status.totals.add(state, n)
        if session:
            status.sessions[session].add(state, n)
    status.embedding = await backlog.workspace_status(pool, workspace_id, session_id, sender_id)
    return status


async def schedule_dream(pool: asyncpg.Pool, workspace_id: str, observer_id: str,
                         observed_id: str, dream_type: DreamType,
                         session_id: str | None) -> bool:
    """Queue a dream about (observer, observed) unless one is pending; True if queued. The
    peers and the session, when given, must exist."""
    async with transaction(pool) as conn:
        await peers.require(conn, workspace_id, observer_id, observed_id)
        if session_id:
            await sessions.require(conn, workspace_id, session_id)
        return await queue.enqueue_dream(conn, workspace_id, DreamPayload(
            observer=observer_id, observed=observed_id, dream_type=dream_type,
            session_id=session_id))
