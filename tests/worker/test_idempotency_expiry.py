"""Idempotency keys expire: the worker's housekeeping purges the keys older than
APP_IDEMPOTENCY_RETENTION_HOURS, after which the same `request_id` is a new request."""

from __future__ import annotations

import uuid
from datetime import timedelta

from honcho_grpc_proto.v1 import message_pb2

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.worker.conftest import eventually, running_worker, worker_settings


def create(ws: str, request_id: str, content: str) -> message_pb2.CreateMessagesRequest:
    return message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", request_id=request_id,
        messages=[message_pb2.MessageInput(peer_id="ann", content=content)])


async def keys(db: Database, ws: str) -> list[str]:
    rows = await db.pool.fetch(
        "SELECT request_id FROM idempotency_keys WHERE workspace_id = $1 ORDER BY request_id",
        ws)
    return [r["request_id"] for r in rows]


async def messages(db: Database, ws: str) -> int:
    return int(await db.pool.fetchval(
        "SELECT count(*) FROM messages WHERE workspace_id = $1", ws))


async def test_expired_key_is_purged_and_a_replay_writes_anew(stubs: Stubs, db: Database,
                                                              pg_dsn: str, ws: str) -> None:
    expired, kept = sorted(str(uuid.uuid4()) for _ in range(2))
    first = await stubs.messages.CreateMessages(create(ws, expired, "I keep bees."))
    await stubs.messages.CreateMessages(create(ws, kept, "I sail."))
    # Retention is one hour: one key was written two hours ago, the other half an hour ago.
    for request_id, age in ((expired, timedelta(hours=2)), (kept, timedelta(minutes=30))):
        await db.pool.execute(
            "UPDATE idempotency_keys SET created_at = now() - $3::interval "
            "WHERE workspace_id = $1 AND request_id = $2", ws, request_id, age)
    # The worker takes no work (no workspace of its own): only its housekeeping runs.
    settings = worker_settings(pg_dsn, [f"{ws}-idle"], queue={"housekeeping_seconds": 0.2},
                               app={"idempotency_retention_hours": 1})
    async with running_worker(settings, handlers={}):
        async def purged() -> bool:
            return await keys(db, ws) == [kept]

        await eventually(purged, within=10)

    replay = await stubs.messages.CreateMessages(create(ws, expired, "I keep bees."))
    assert replay.messages[0].id != first.messages[0].id  # a new message, not the first answer
    assert await messages(db, ws) == 3
    assert await keys(db, ws) == [expired, kept]  # remembered again, from now
    # The key still within its retention replays: nothing is written.
    await stubs.messages.CreateMessages(create(ws, kept, "I sail."))
    assert await messages(db, ws) == 3
