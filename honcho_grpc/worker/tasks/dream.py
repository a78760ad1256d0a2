"""Dreams (honcho_grpc/domain/dreams.py): the model consolidates what an observer knows about
a peer -- the conclusions, the card and the messages behind the newest ones in view, with a
few rounds of lookups when one call is not enough (DREAM_MAX_TOOL_ROUNDS); the card is
refreshed from the newest explicit conclusions."""

from __future__ import annotations

import asyncpg

from honcho_grpc.domain import dreams, peer_cards
from honcho_grpc.domain.conclusions import Candidate, Pair
from honcho_grpc.domain.config import read_features
from honcho_grpc.domain.dialectic_tools import Toolbox, message_line, viewpoint
from honcho_grpc.work_units import DreamPayload
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import Result, TaskContext, payloads
from honcho_grpc.worker.values import Conclusion, DreamPlan, Usage

CARD_FACTS = 60  # most recent explicit conclusions a card refresh reads


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    payload = payloads(jobs, DreamPayload)[0]
    pair = Pair(jobs[0].workspace_id, payload.observer, payload.observed)
    omni = payload.dream_type != "card_refresh"
    listed = await dreams.live_conclusions(ctx.db, pair, ctx.settings.dream.max_conclusions)
    shown = [Conclusion(c.conclusion_id, c.content, c.level, c.created_at) for c in listed]
    feats = await read_features(ctx.db, ctx.settings, pair.workspace_id, None)
    card = (await peer_cards.cards(ctx.db, pair.workspace_id, [pair.observer_id],
                                   pair.observed_id))[pair.observer_id]
    usage = Usage()
    plan = DreamPlan()
    if omni and shown:
        plan, u = await _consolidate(ctx, pair, listed, shown, card)
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
    outcome = dreams.Outcome(
        pair=pair, queue_ids=[j.id for j in jobs], omni=omni,
        derived=[Candidate(content=d.content, level=d.level, embedding=v,
                           premise_ids=list(d.premise_ids))
                 for d, v in zip(plan.derived, vectors, strict=True)],
        superseded=list(plan.superseded), card=new_card, card_before=card)
    model = ctx.embedder.model_id

    async def apply(conn: asyncpg.Connection) -> None:
        await dreams.save(conn, outcome, model=model)

    return Result(usage=usage, apply=apply)


async def _consolidate(ctx: TaskContext, pair: Pair, listed: list[dreams.Shown],
                       shown: list[Conclusion], card: list[str] | None,
                       ) -> tuple[DreamPlan, Usage]:
    """The model's consolidation, with what the observer may see: the card, the messages
    behind the newest conclusions, and lookups from the observer's viewpoint."""
    settings = ctx.settings.dream
    view = await viewpoint(ctx.db, pair.workspace_id, pair.observer_id, pair.observed_id)
    messages = await dreams.source_messages(ctx.db, pair, listed, view.session_list(),
                                            settings.message_tokens)
    toolbox = Toolbox(ctx.db, ctx.embedder, view)
    return await ctx.reasoner.dream(pair.observed_id, shown, card=card,
                                    messages=[message_line(m) for m in messages],
                                    toolbox=toolbox, rounds=settings.max_tool_rounds)
