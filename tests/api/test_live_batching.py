"""Live batching on the write path (store/queue hold_for_batch): a sender's fresh jobs are
held until the session's pending conversation reaches QUEUE_BATCH_MIN_TOKENS or the unit's
oldest job has waited QUEUE_BATCH_WAIT_SECONDS -- and a write only touches the jobs whose
state changes, so that its cost does not grow with what is pending."""

from __future__ import annotations

from typing import Any

from honcho_grpc.db.pool import Database
from honcho_grpc.domain import messages
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.model import MessageDraft
from honcho_grpc.settings import Settings
from honcho_grpc.store.queue import HOLD_SQL
from honcho_grpc.work_units import representation_key
from tests.conftest import make_settings

WAIT = 600.0


def held_settings(settings: Settings, min_tokens: int) -> Settings:
    # No idle rule here: it moves the hold at every write by design (tests/worker covers it);
    # these tests pin the token threshold and the wait bound.
    return make_settings(settings.db.connection_uri or "",
                         queue={"batch_wait_seconds": WAIT, "batch_min_tokens": min_tokens,
                                "batch_idle_seconds": 0})


async def write(db: Database, settings: Settings, ws: str, session: str, peer: str,
                n: int) -> None:
    batch = messages.prepare([MessageDraft(peer, f"{peer} says hello number {i}", {}, {}, None)
                              for i in range(n)])
    async with transaction(db.pool) as conn:
        await messages.write_messages(conn, settings, ws, session, batch)


async def jobs(db: Database, ws: str) -> list[Any]:
    """The representation jobs: id, held (run_after in the future), hold time, row version."""
    return list(await db.pool.fetch(
        "SELECT id, run_after > now() AS held, run_after, xmin::text AS version, created_at "
        "FROM queue WHERE workspace_id = $1 AND task_type = 'representation' ORDER BY id", ws))


async def session_tokens(db: Database, ws: str) -> int:
    return int(await db.pool.fetchval(
        "SELECT sum(token_count) FROM messages WHERE workspace_id = $1", ws))


async def test_fresh_jobs_wait_for_enough_tokens_then_go_together(
        db: Database, settings: Settings, ws: str) -> None:
    await write(db, settings, ws, "s", "ann", 1)
    per_message = await session_tokens(db, ws)
    held = held_settings(settings, min_tokens=per_message * 10)
    # Write again under the holding settings: the unit now has a head younger than WAIT.
    await db.pool.execute("DELETE FROM queue WHERE workspace_id = $1", ws)
    await write(db, held, ws, "s", "ann", 3)
    await write(db, held, ws, "s", "ann", 3)
    rows = await jobs(db, ws)
    assert len(rows) == 6 and all(r["held"] for r in rows)
    # Every job waits until the unit's oldest is WAIT old, not each its own time.
    head_time = rows[0]["created_at"]
    assert {r["run_after"] for r in rows} == {rows[0]["run_after"]}
    assert abs((rows[0]["run_after"] - head_time).total_seconds() - WAIT) < 1
    # Past the token threshold (the conversation from the message before the oldest job),
    # all of them become due at once.
    await write(db, held, ws, "s", "ann", 6)
    rows = await jobs(db, ws)
    assert len(rows) == 12 and not any(r["held"] for r in rows)


async def test_a_write_rewrites_no_job_whose_state_does_not_change(
        db: Database, settings: Settings, ws: str) -> None:
    """With a lagging worker the unit's pending jobs pile up; each write must leave the
    earlier ones alone (they were rewritten at every write before: O(n^2) over an ingest)."""
    await write(db, settings, ws, "s", "ann", 1)
    per_message = await session_tokens(db, ws)
    held = held_settings(settings, min_tokens=per_message * 4)
    await db.pool.execute("DELETE FROM queue WHERE workspace_id = $1", ws)
    await write(db, held, ws, "s", "ann", 2)  # held: below the threshold
    await write(db, held, ws, "s", "ann", 5)  # over it: all due
    before = {r["id"]: r["version"] for r in await jobs(db, ws)}
    for _ in range(3):
        await write(db, held, ws, "s", "ann", 5)
    rows = await jobs(db, ws)
    assert len(rows) == 22 and not any(r["held"] for r in rows)
    assert {r["id"]: r["version"] for r in rows if r["id"] in before} == before

    # Still held (below the threshold): a further write holds its own jobs only.
    await write(db, settings, ws, "t", "bob", 1)
    await db.pool.execute("DELETE FROM queue WHERE workspace_id = $1 AND session_id = 't'", ws)
    await write(db, held, ws, "t", "bob", 1)
    first = [r for r in await jobs(db, ws) if r["id"] not in before and r["held"]]
    await write(db, held, ws, "t", "bob", 1)
    again = {r["id"]: r["version"] for r in await jobs(db, ws)}
    assert len(first) == 1 and again[first[0]["id"]] == first[0]["version"]


async def test_idle_rule_holds_until_the_unit_is_quiet(
        db: Database, settings: Settings, ws: str) -> None:
    """With QUEUE_BATCH_IDLE_SECONDS a held unit becomes due once no message came for that
    long: each write moves the whole unit's hold to its own time plus the idle period."""
    await write(db, settings, ws, "s", "ann", 1)
    per_message = await session_tokens(db, ws)
    idle = make_settings(settings.db.connection_uri or "",
                         queue={"batch_wait_seconds": WAIT, "batch_idle_seconds": 30,
                                "batch_min_tokens": per_message * 100})
    await db.pool.execute("DELETE FROM queue WHERE workspace_id = $1", ws)
    await write(db, idle, ws, "s", "ann", 2)
    first = await jobs(db, ws)
    assert all(r["held"] for r in first)
    assert abs((first[0]["run_after"] - first[0]["created_at"]).total_seconds() - 30) < 5
    await write(db, idle, ws, "s", "ann", 1)
    rows = await jobs(db, ws)
    assert len(rows) == 3 and {r["run_after"] for r in rows} == {rows[-1]["run_after"]}
    assert rows[0]["run_after"] > first[0]["run_after"]


def queue_rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's scans of `queue` returned or filtered out, over all their loops."""
    read = 0
    if plan.get("Relation Name") == "queue":
        loops = plan.get("Actual Loops", 1)
        read += round((plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0))
                      * loops)
    for child in plan.get("Plans", []):
        read += queue_rows_read(child)
    return read


async def test_the_hold_step_reads_its_own_units_jobs_not_the_workspaces(
        db: Database, settings: Settings, ws: str) -> None:
    """However many jobs other units of the workspace have pending (a lagging worker), the
    hold step of a write reads its own unit's: it once walked every pending row of the
    workspace when the queue had no statistics yet (1 -> 8 ms a batch over an ingest)."""
    for _ in range(15):
        await write(db, settings, ws, "s", "ann", 100)  # 1,500 due jobs of ann's unit
    await write(db, settings, ws, "t", "bob", 1)
    per_message = await session_tokens(db, ws) // 1501
    held = held_settings(settings, min_tokens=per_message * 50)
    await write(db, held, ws, "t", "bob", 2)  # bob's unit: 3 jobs, held
    async with transaction(db.pool) as conn:
        explained = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + HOLD_SQL, ws,
            [representation_key(ws, "t", "bob")], WAIT, per_message * 50, 0.0)
    plan = explained[0]["Plan"]  # the pool decodes json
    pending = await db.pool.fetchval(
        "SELECT count(*) FROM queue WHERE workspace_id = $1 AND status = 'pending'", ws)
    # Its 1,500 messages would otherwise be embedded into the shared vector index.
    await db.pool.execute("DELETE FROM workspaces WHERE workspace_id = $1", ws)
    await db.pool.execute("DELETE FROM queue WHERE workspace_id = $1", ws)
    assert pending >= 1500
    assert queue_rows_read(plan) <= 20, plan
