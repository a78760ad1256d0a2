"""Dreams: consolidation of what an observer knows about a peer. An `omni` dream derives
deductive, inductive and contradiction conclusions (with their premises), marks conclusions
that newer ones supersede as invalidated (never deletes them) and refreshes the peer card; a
`card_refresh` dream only rebuilds the card."""

from __future__ import annotations

from typing import Any

from honcho_grpc.worker import events
from honcho_grpc.worker.db import Conn
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext, common
from honcho_grpc.worker.tasks import conclusions as writer
from honcho_grpc.worker.values import Conclusion, DreamPlan, Usage

CARD_FACTS = 60  # most recent explicit conclusions a card refresh reads


async def _conclusions(conn: Conn, pair: writer.Pair, limit: int) -> list[Conclusion]:
    rows = await (await conn.execute(
        "SELECT conclusion_id, content, level, created_at FROM conclusions "
        "WHERE workspace_id = %s AND observer_id = %s AND observed_id = %s "
        "AND invalidated_at IS NULL ORDER BY created_at DESC, conclusion_id DESC LIMIT %s",
        (pair.workspace_id, pair.observer_id, pair.observed_id, limit))).fetchall()
    return [Conclusion(r["conclusion_id"], r["content"], r["level"],
                       r["created_at"].isoformat()) for r in reversed(rows)]


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    job = jobs[0]
    p = job.payload
    try:
        pair = writer.Pair(job.workspace_id, str(p["observer"]), str(p["observed"]))
    except KeyError as exc:
        raise PermanentError(f"malformed dream payload: {exc}") from exc
    omni = p.get("dream_type", "omni") != "card_refresh"
    async with ctx.pool.connection() as conn:
        shown = await _conclusions(conn, pair, ctx.settings.dream.max_conclusions)
        feats = await common.features(conn, ctx.settings, pair.workspace_id, None)
        card = await common.peer_card(conn, pair.workspace_id, pair.observer_id,
                                      pair.observed_id)
    usage = Usage()
    plan = DreamPlan()
    if omni and shown:
        plan, u = await ctx.reasoner.dream(pair.observed_id, shown)
        usage.add(u)
    vectors = list(await ctx.embedder.embed([d.content for d in plan.derived])) \
        if plan.derived else []
    new_card: list[str] | None = None
    facts = [c.content for c in shown if c.level == "explicit"][-CARD_FACTS:]
    if feats.peer_card_create and facts:
        # Newest first: a full card keeps the latest facts.
        new_card, u = await ctx.reasoner.update_card(pair.observed_id, card or [],
                                                     list(reversed(facts)))
        usage.add(u)

    async def apply(conn: Conn) -> None:
        needed = sorted({pair.observer_id, pair.observed_id})
        if len(await common.live_peers(conn, pair.workspace_id, needed)) < len(needed):
            return
        await _apply_plan(conn, ctx, pair, plan, vectors, [str(j.id) for j in jobs])
        if new_card is not None:
            await common.save_peer_card(conn, pair.workspace_id, pair.observer_id,
                                        pair.observed_id, new_card, card)
        if omni:
            await _remember(conn, pair)

    return Result(usage=usage, apply=apply)


async def _apply_plan(conn: Conn, ctx: TaskContext, pair: writer.Pair, plan: DreamPlan,
                      vectors: list[Any], queue_ids: list[str]) -> None:
    live = await _live_ids(conn, pair, {i for d in plan.derived for i in d.premise_ids}
                           | {i for s in plan.superseded for i in s})
    items = [writer.NewConclusion(content=d.content, level=d.level, embedding=v,
                                  premise_ids=[i for i in d.premise_ids if i in live])
             for d, v in zip(plan.derived, vectors, strict=True)]
    items = [i for i in items if i.premise_ids]
    if items and not await writer.already_written(conn, pair, [int(q) for q in queue_ids]):
        written = await writer.write(conn, pair, items,
                                     model=getattr(ctx.embedder, "model_id", None),
                                     metadata={"queue_ids": queue_ids, "dream": True})
        await events.emit(conn, events.CONCLUSIONS_DERIVED, pair.workspace_id,
                          peer_id=pair.observed_id, peers=[pair.observer_id],
                          data={"observer_id": pair.observer_id,
                                "observed_id": pair.observed_id, "dream": True,
                                "created": len(written.created),
                                "reinforced": len(written.reinforced),
                                "conclusion_ids": written.created})
    for old, new in plan.superseded:
        if old in live and new in live:
            await _supersede(conn, pair, old, new)


async def _live_ids(conn: Conn, pair: writer.Pair, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    rows = await (await conn.execute(
        "SELECT conclusion_id FROM conclusions WHERE workspace_id = %s AND observer_id = %s "
        "AND observed_id = %s AND conclusion_id = ANY(%s) AND invalidated_at IS NULL",
        (pair.workspace_id, pair.observer_id, pair.observed_id, list(ids)))).fetchall()
    return {r["conclusion_id"] for r in rows}


async def _supersede(conn: Conn, pair: writer.Pair, old: str, new: str) -> None:
    cur = await conn.execute(
        "UPDATE conclusions SET invalidated_at = now(), superseded_by = %s "
        "WHERE workspace_id = %s AND conclusion_id = %s AND invalidated_at IS NULL",
        (new, pair.workspace_id, old))
    if cur.rowcount:
        await events.emit(conn, events.CONCLUSION_INVALIDATED, pair.workspace_id,
                          peer_id=pair.observed_id, peers=[pair.observer_id],
                          data={"conclusion_id": old, "superseded_by": new,
                                "observer_id": pair.observer_id})


async def _remember(conn: Conn, pair: writer.Pair) -> None:
    """When the pair dreamt and how many explicit conclusions it had (the next threshold)."""
    await conn.execute(
        """
        INSERT INTO dream_state (workspace_id, observer_id, observed_id, last_dream_at,
                                 last_dream_count)
        SELECT %(ws)s, %(obs)s, %(obd)s, now(), count(*) FROM conclusions
        WHERE workspace_id = %(ws)s AND observer_id = %(obs)s AND observed_id = %(obd)s
          AND level = 'explicit' AND invalidated_at IS NULL
        ON CONFLICT (workspace_id, observer_id, observed_id) DO UPDATE
        SET last_dream_at = EXCLUDED.last_dream_at,
            last_dream_count = EXCLUDED.last_dream_count
        """, {"ws": pair.workspace_id, "obs": pair.observer_id, "obd": pair.observed_id})
