"""Peer cards (honcho_grpc/domain/peer_cards.py): one observer's card about one peer, remade
from the current card and the newest explicit conclusions. Its own task, queued by the
extraction that wrote new facts (at most once per `PEER_CARD_REFRESH_SECONDS` per pair, see
store/queue enqueue_cards) and refreshed by dreams too, so a card costs one call per refresh
rather than one per batch, and a card failure is retried on its own, never re-running (or
failing) the extraction."""

from __future__ import annotations

import asyncpg

from honcho_grpc.domain import dreams, peer_cards
from honcho_grpc.domain.conclusions import Pair
from honcho_grpc.domain.config import read_features
from honcho_grpc.store import peers, queue
from honcho_grpc.work_units import CardPayload, dream_key
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import Result, TaskContext, payloads

CARD_FACTS = 60  # newest explicit conclusions a refresh reads


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    payload = payloads(jobs, CardPayload)[-1]  # rows of one pair: the newest decides
    pair = Pair(jobs[0].workspace_id, payload.observer, payload.observed)
    feats = await read_features(ctx.db, ctx.settings, pair.workspace_id, None)
    if not feats.peer_card_create or await queue.is_pending(
            ctx.db, pair.workspace_id,
            dream_key(pair.workspace_id, pair.observer_id, pair.observed_id)):
        return Result()  # no cards, or a dream queued meanwhile refreshes this one
    shown = await dreams.live_conclusions(ctx.db, pair, ctx.settings.dream.max_conclusions)
    facts = [c.content for c in shown if c.level == "explicit"][-CARD_FACTS:]
    if not facts:
        return Result()
    card = (await peer_cards.cards(ctx.db, pair.workspace_id, [pair.observer_id],
                                   pair.observed_id))[pair.observer_id]
    # Newest first: a full card keeps the latest facts.
    entries, usage = await ctx.reasoner.update_card(pair.observed_id, card or [],
                                                    list(reversed(facts)))

    async def apply(conn: asyncpg.Connection) -> None:
        needed = sorted({pair.observer_id, pair.observed_id})
        if len(await peers.lock_peers(conn, pair.workspace_id, needed)) < len(needed):
            return
        await peer_cards.save_derived(conn, pair.workspace_id, pair.observer_id,
                                      pair.observed_id, entries, card)

    return Result(usage=usage, apply=apply)
