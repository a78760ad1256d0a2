"""Representation: explicit conclusions about the sender of a batch of messages, stored for
every observer named in the jobs (one model call, fanned out), then the observers' peer cards
and, past a threshold, a dream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from honcho_grpc.worker import events
from honcho_grpc.worker.db import Conn
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext, common
from honcho_grpc.worker.tasks import conclusions as writer
from honcho_grpc.worker.values import Usage

# Messages shown around the batch: the one before it (what the sender answers) and the
# others' messages interleaved with it.
CONTEXT_BEFORE = 1
MAX_CONTEXT_MESSAGES = 300


@dataclass
class Batch:
    workspace_id: str
    session_id: str
    observed: str
    observers: list[str]
    custom_instructions: str
    queue_ids: list[int]
    message_ids: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    latest: str = ""


def _batch(jobs: list[Job]) -> Batch:
    p = jobs[0].payload
    try:
        return Batch(jobs[0].workspace_id, str(jobs[0].session_id), str(p["observed"]),
                     [str(o) for o in p["observers"]], str(p.get("custom_instructions") or ""),
                     [j.id for j in jobs])
    except (KeyError, TypeError) as exc:
        raise PermanentError(f"malformed representation payload: {exc}") from exc


async def _load(conn: Conn, b: Batch, wanted: list[str]) -> None:
    """The batch's messages that still exist, and the transcript around them."""
    own = await (await conn.execute(
        "SELECT message_id, seq, created_at FROM messages WHERE workspace_id = %s "
        "AND message_id = ANY(%s) ORDER BY seq", (b.workspace_id, wanted))).fetchall()
    if not own:
        return
    b.message_ids = [r["message_id"] for r in own]
    b.latest = own[-1]["created_at"].isoformat()
    rows = await (await conn.execute(
        "SELECT seq, peer_id, content, created_at FROM messages WHERE workspace_id = %s "
        "AND session_id = %s AND seq BETWEEN %s AND %s ORDER BY seq LIMIT %s",
        (b.workspace_id, b.session_id, own[0]["seq"] - CONTEXT_BEFORE, own[-1]["seq"],
         MAX_CONTEXT_MESSAGES))).fetchall()
    first = own[0]["seq"]
    # The sender's own earlier message was derived from already: context only from others.
    b.lines = [common.transcript_line(r) for r in rows
               if r["seq"] >= first or r["peer_id"] != b.observed]


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    b = _batch(jobs)
    async with ctx.pool.connection() as conn:
        await _load(conn, b, [str(j.payload.get("message_id")) for j in jobs])
        if not b.message_ids:
            return Result()  # every message was deleted meanwhile
        feats = await common.features(conn, ctx.settings, b.workspace_id, b.session_id)
        cards = {o: await common.peer_card(conn, b.workspace_id, o, b.observed)
                 for o in b.observers} if feats.peer_card_create else {}
    facts, usage = await ctx.reasoner.derive_facts(b.observed, b.lines, b.custom_instructions)
    vectors = list(await ctx.embedder.embed(facts)) if facts else []
    new_cards = await _cards(ctx, b.observed, cards, facts, usage) if facts else {}

    async def apply(conn: Conn) -> None:
        await _apply(conn, ctx, b, facts, vectors, cards, new_cards, feats)

    return Result(usage=usage, apply=apply)


async def _cards(ctx: TaskContext, observed: str, cards: dict[str, list[str] | None],
                 facts: list[str], usage: Usage) -> dict[str, list[str]]:
    """Updated cards per observer; observers holding the same card share one model call."""
    by_card: dict[tuple[str, ...], list[str]] = {}
    for observer, card in cards.items():
        by_card.setdefault(tuple(card or []), []).append(observer)
    out: dict[str, list[str]] = {}
    for shared, observers in by_card.items():
        entries, u = await ctx.reasoner.update_card(observed, list(shared), facts)
        usage.add(u)
        out.update({o: entries for o in observers})
    return out


async def _apply(conn: Conn, ctx: TaskContext, b: Batch, facts: list[str],
                 vectors: list[np.ndarray], cards: dict[str, Any],
                 new_cards: dict[str, list[str]], feats: common.Features) -> None:
    observers = await common.live_peers(conn, b.workspace_id, b.observers)
    if b.observed not in await common.live_peers(conn, b.workspace_id, [b.observed]):
        return
    sources = await _live_messages(conn, b)
    if not sources:
        return
    for observer in observers:
        pair = writer.Pair(b.workspace_id, observer, b.observed)
        if facts and not await writer.already_written(conn, pair, b.queue_ids):
            await _write_facts(conn, ctx, b, pair, facts, vectors, sources)
        if observer in new_cards:
            await common.save_peer_card(conn, b.workspace_id, observer, b.observed,
                                        new_cards[observer], cards.get(observer))
        if feats.dream_enabled:
            await common.maybe_schedule_dream(conn, ctx.settings, b.workspace_id, observer,
                                              b.observed, b.session_id)


async def _live_messages(conn: Conn, b: Batch) -> list[str]:
    """Source messages still there, locked so a concurrent delete waits for our commit."""
    rows = await (await conn.execute(
        "SELECT message_id FROM messages WHERE workspace_id = %s AND message_id = ANY(%s) "
        "FOR KEY SHARE", (b.workspace_id, b.message_ids))).fetchall()
    return [r["message_id"] for r in rows]


async def _write_facts(conn: Conn, ctx: TaskContext, b: Batch, pair: writer.Pair,
                       facts: list[str], vectors: list[np.ndarray], sources: list[str]) -> None:
    items = [writer.NewConclusion(content=f, level="explicit", embedding=v,
                                  session_id=b.session_id, source_message_ids=sources)
             for f, v in zip(facts, vectors, strict=True)]
    written = await writer.write(
        conn, pair, items, model=getattr(ctx.embedder, "model_id", None),
        metadata={"queue_ids": [str(i) for i in b.queue_ids], "message_created_at": b.latest})
    await events.emit(conn, events.CONCLUSIONS_DERIVED, b.workspace_id,
                      session_id=b.session_id, peer_id=b.observed, peers=[pair.observer_id],
                      data={"observer_id": pair.observer_id, "observed_id": b.observed,
                            "level": "explicit", "created": len(written.created),
                            "reinforced": len(written.reinforced),
                            "conclusion_ids": written.created})
