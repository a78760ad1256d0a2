"""What the worker owes the queue beyond moving rows (honcho_grpc/store/queue/transport.py):
a task's results commit together with its completion, and only while the worker still holds
the work unit; a unit that drains is announced to watchers and webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import asyncpg

from honcho_grpc.domain.events import QUEUE_DRAINED
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.store import events, queue
from honcho_grpc.work_units import ANNOUNCE_DRAINED, MalformedWorkUnit, TaskType, parse_key

# A task's writes, run inside its completion's transaction.
Apply: TypeAlias = Callable[[asyncpg.Connection], Awaitable[None]]
QUEUE_EMPTY_WEBHOOK = "queue.empty"


class LeaseLost(Exception):
    """This worker no longer owns the work unit (its lease lapsed and was taken over)."""


async def complete(pool: asyncpg.Pool, workspace_id: str, work_unit_keys: str | list[str],
                   worker_id: str, ids: list[int], usage: dict[str, int],
                   apply: Apply | None) -> None:
    """Run `apply` and mark the rows completed in one transaction, fenced: it first locks the
    units' leases (in key order) and raises LeaseLost (writing nothing) unless `worker_id`
    holds every one, so a worker that was paused or cut off cannot complete work someone
    else is redoing. Several units: rows of other speakers joined to one extraction."""
    keys = [work_unit_keys] if isinstance(work_unit_keys, str) else list(work_unit_keys)
    async with transaction(pool) as conn:
        for key in sorted(set(keys)):
            if not await queue.hold_lease(conn, workspace_id, key, worker_id):
                raise LeaseLost(key)
        if apply is not None:
            await apply(conn)
        await queue.mark_completed(conn, workspace_id, ids, usage)


async def announce_drained(pool: asyncpg.Pool, workspace_id: str, work_unit_key: str) -> bool:
    """A unit of derivation work has nothing open left: `queue.drained` for watchers and a
    `queue.empty` webhook per endpoint, in one transaction. False for kinds not announced."""
    try:
        key = parse_key(work_unit_key)
    except MalformedWorkUnit:
        return False
    if key.task_type not in ANNOUNCE_DRAINED:
        return False
    kind = key.task_type.value
    observed = key.observed_id if key.task_type is TaskType.REPRESENTATION else ""
    async with transaction(pool) as conn:
        await events.emit(conn, QUEUE_DRAINED, workspace_id, session_id=key.session_id,
                          peer_id=observed,
                          data={"queue_type": kind, "work_unit_key": work_unit_key})
        await queue.enqueue_webhook_deliveries(conn, workspace_id, QUEUE_EMPTY_WEBHOOK, {
            "workspace_id": workspace_id, "queue_type": kind, "session_id": key.session_id,
            "observed": observed or None})
    return True
