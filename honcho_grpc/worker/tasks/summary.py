"""Session summaries (honcho_grpc/domain/summaries.py): the previous summary of the tier plus
the messages after it, summarised by the model."""

from __future__ import annotations

import asyncpg

from honcho_grpc.domain import summaries
from honcho_grpc.work_units import SummaryPayload
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext, payloads


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    job = jobs[0]
    payload = payloads(jobs, SummaryPayload)[0]
    if job.session_id is None:
        raise PermanentError("a summary job without a session")
    ws, session, kind = job.workspace_id, job.session_id, payload.summary_type
    source = await summaries.read_input(ctx.db, ws, session, kind, payload.seq)
    if source is None:
        return Result()  # covered already, or nothing to summarise
    text, usage = await ctx.reasoner.summarize(kind, source.previous, source.lines,
                                               source.words)

    async def apply(conn: asyncpg.Connection) -> None:
        await summaries.save(conn, ws, session, kind, text, source)

    return Result(usage=usage, apply=apply)
