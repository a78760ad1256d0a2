"""GetContext: prompt-ready context for a session within a token budget.

Budget order: the target's representation and peer card first; then about 40% of what is
left for the best-fitting summary (the long one when it fits and says more, else the short
one); the rest for the newest messages after the summary's coverage, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from honcho_grpc.domain.aio import all_of, nothing
from honcho_grpc.domain.representation import RepresentationQuery, render, select_conclusions
from honcho_grpc.errors import not_found
from honcho_grpc.model import Message, Summary
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.providers.tokens import count_tokens
from honcho_grpc.store import memory, sessions

SUMMARY_SHARE = 0.4


@dataclass
class Context:
    messages: list[Message] = field(default_factory=list)
    summary: Summary | None = None
    representation: str = ""
    peer_card: list[str] = field(default_factory=list)


def pick_summary(found: dict[str, Summary], budget: int) -> Summary | None:
    fitting = [s for s in (found.get("long"), found.get("short"))
               if s is not None and s.token_count <= budget]
    # Prefer the one covering the most; on a tie the longer (the long tier says more).
    return max(fitting, key=lambda s: (s.last_message_seq, s.token_count), default=None)


async def _representation(pool: asyncpg.Pool, embedder: Embedder,
                          q: RepresentationQuery) -> tuple[str, list[str]]:
    # The card is built from every session: a scoped read leaves it out.
    conclusions, card = await all_of(
        select_conclusions(pool, embedder, q),
        memory.peer_card(pool, q.workspace_id, q.observer_id, q.observed_id)
        if q.sessions is None else nothing())
    return render(conclusions), card.entries if card else []


async def build_context(pool: asyncpg.Pool, embedder: Embedder, *, workspace_id: str,
                        session_id: str, budget: int, include_summary: bool,
                        representation: RepresentationQuery | None) -> Context:
    """The session check, the representation, the peer card and the summaries are
    independent reads: they run at once on separate connections. The messages come after,
    once the others have taken their share of the budget. (Fetching them at once for the
    whole budget and trimming costs more: hundreds of rows instead of the few after the
    summary.) NOT_FOUND when the session does not exist."""
    session, rep, summaries = await all_of(
        sessions.get_session(pool, workspace_id, session_id),
        _representation(pool, embedder, representation) if representation else nothing(),
        memory.summaries(pool, workspace_id, session_id) if include_summary else nothing())
    if session is None:
        raise not_found("session", workspaceId=workspace_id, sessionId=session_id)
    ctx = Context()
    if rep is not None:
        ctx.representation, ctx.peer_card = rep
        budget -= count_tokens(ctx.representation) + sum(count_tokens(e) for e in ctx.peer_card)
    budget = max(budget, 0)
    covered = 0
    if summaries is not None:
        ctx.summary = pick_summary(summaries, int(budget * SUMMARY_SHARE))
        if ctx.summary is not None:
            budget -= ctx.summary.token_count
            covered = ctx.summary.last_message_seq
    ctx.messages = await memory.recent_messages_within(pool, workspace_id, session_id, covered,
                                                       budget)
    return ctx
