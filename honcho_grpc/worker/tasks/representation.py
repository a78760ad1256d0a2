"""Representation: explicit conclusions about the speakers of a stretch of a session. The
jobs are the claimed unit's rows plus the other speakers' rows joined to them
(worker/queue.py join_stretch); one model call reads the stretch once and files each fact
under its speaker, and the facts are written for every observer of that speaker, with a card
refresh queued where one is due and, past a threshold, a dream
(honcho_grpc/domain/derivation.py). Cards are their own task (tasks/card.py): a card never
fails, repeats or re-bills an extraction."""

from __future__ import annotations

import logging

import asyncpg

from honcho_grpc.domain import derivation
from honcho_grpc.domain.config import read_features
from honcho_grpc.work_units import RepresentationPayload
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import Result, TaskContext, payloads

log = logging.getLogger(__name__)


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    typed = payloads(jobs, RepresentationPayload)
    ws, session = jobs[0].workspace_id, str(jobs[0].session_id)
    # Per speaker, in the order their units were joined (the claimed unit first).
    speakers: dict[str, derivation.Speaker] = {}
    for job, p in zip(jobs, typed, strict=True):
        s = speakers.setdefault(p.observed, derivation.Speaker(p.observed, list(p.observers)))
        s.message_ids.append(p.message_id)
        s.queue_ids.append(job.id)
    stretch = await derivation.read_stretch(ctx.db, ws, session, list(speakers.values()))
    if stretch is None:
        return Result()  # every message was deleted meanwhile
    feats = await read_features(ctx.db, ctx.settings, ws, session)
    targets = [s.observed for s in stretch.speakers]
    facts, usage = await ctx.reasoner.derive_facts(targets, stretch.lines,
                                                   typed[0].custom_instructions,
                                                   earlier=stretch.earlier)
    vectors = list(await ctx.embedder.embed([f.content for f in facts])) if facts else []
    observations = [derivation.Observation(
        workspace_id=ws, session_id=session, observed=s.observed, observers=s.observers,
        queue_ids=s.queue_ids, batch=stretch.batch_of(s),
        facts=[f for f in facts if f.about == s.observed],
        vectors=[v for f, v in zip(facts, vectors, strict=True) if f.about == s.observed])
        for s in stretch.speakers]
    model = ctx.embedder.model_id

    async def apply(conn: asyncpg.Connection) -> None:
        await derivation.save_all(conn, ctx.settings, observations, model=model,
                                  dream_enabled=feats.dream_enabled,
                                  cards=feats.peer_card_create)

    return Result(usage=usage, apply=apply)
