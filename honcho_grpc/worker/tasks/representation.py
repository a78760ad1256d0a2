"""Representation: explicit conclusions about the sender of a batch of messages, for every
observer named in the jobs (one model call, fanned out), then the observers' peer cards and,
past a threshold, a dream (honcho_grpc/domain/derivation.py)."""

from __future__ import annotations

import logging

import asyncpg

from honcho_grpc.domain import derivation, peer_cards
from honcho_grpc.domain.config import read_features
from honcho_grpc.providers.llm import LLMError
from honcho_grpc.work_units import RepresentationPayload
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.reasoning import ReasoningError
from honcho_grpc.worker.tasks import Result, TaskContext, payloads
from honcho_grpc.worker.values import PermanentError, Usage

log = logging.getLogger(__name__)


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    typed = payloads(jobs, RepresentationPayload)
    first = typed[0]  # the rows of a batch share observers and instructions (queue._fits)
    ws, session = jobs[0].workspace_id, str(jobs[0].session_id)
    batch = await derivation.read_batch(ctx.db, ws, session, first.observed,
                                        [p.message_id for p in typed])
    if batch is None:
        return Result()  # every message was deleted meanwhile
    feats = await read_features(ctx.db, ctx.settings, ws, session)
    cards = await peer_cards.cards(ctx.db, ws, first.observers, first.observed) \
        if feats.peer_card_create else {}
    facts, usage = await ctx.reasoner.derive_facts(first.observed, batch.lines,
                                                   first.custom_instructions)
    vectors = list(await ctx.embedder.embed([f.content for f in facts])) if facts else []
    contents = [f.content for f in facts]
    new_cards = await _cards(ctx, first.observed, cards, contents, usage) if facts else {}
    observation = derivation.Observation(
        workspace_id=ws, session_id=session, observed=first.observed,
        observers=list(first.observers), queue_ids=[j.id for j in jobs], batch=batch,
        facts=facts, vectors=vectors, cards_before=cards, cards=new_cards)
    model = ctx.embedder.model_id

    async def apply(conn: asyncpg.Connection) -> None:
        await derivation.save(conn, ctx.settings, observation, model=model,
                              dream_enabled=feats.dream_enabled)

    return Result(usage=usage, apply=apply)


async def _cards(ctx: TaskContext, observed: str, cards: dict[str, list[str] | None],
                 facts: list[str], usage: Usage) -> dict[str, list[str]]:
    """Updated cards per observer; observers holding the same card share one model call.
    A card that cannot be made now is left as it is -- the facts are stored all the same
    and the next batch or dream refreshes it -- so a card failure never re-runs (and
    re-bills) the extraction."""
    by_card: dict[tuple[str, ...], list[str]] = {}
    for observer, card in cards.items():
        by_card.setdefault(tuple(card or []), []).append(observer)
    out: dict[str, list[str]] = {}
    for shared, observers in by_card.items():
        try:
            entries, u = await ctx.reasoner.update_card(observed, list(shared), facts)
        except (LLMError, ReasoningError, PermanentError) as exc:
            log.warning("peer card of %s not updated: %s", observed, exc)
            continue
        usage.add(u)
        out.update({o: entries for o in observers})
    return out
