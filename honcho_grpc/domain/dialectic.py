"""Dialectic: answer a peer's question about a target peer from what the observer knows.

Flow: gather (peer cards, semantic matches among explicit and derived conclusions, session
summary and recent messages, message search for specifics) -> prompt -> from `low` up, a
bounded tool loop (see dialectic_tools) -> the answer, streamed. Every provider, the offline
`local` one included, gets the same prompts and tools. Only valid (not superseded)
conclusions are used. With nothing known, the prompt asks the model to abstain rather than
invent.

Tool rounds are streamed, and their text goes to the client as it arrives: when the model
answers without asking for a lookup, that round's stream is the answer, with no second call
and no wait for the whole of it. Only when the rounds run out does a last, tool-less call
stream the answer, with the lookups' results folded into its prompt as plain text (any
provider accepts that; Anthropic rejects tool turns in a request that offers no tools).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from honcho_grpc import model
from honcho_grpc.domain import peers, sessions
from honcho_grpc.domain.aio import all_of, nothing
from honcho_grpc.domain.dialectic_tools import (
    Finding,
    LoopOutcome,
    Toolbox,
    Viewpoint,
    stream_reply,
    tool_loop,
    viewpoint,
)
from honcho_grpc.domain.search import Scope, search_messages
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.providers.llm.base import (
    Completion,
    LLMProvider,
    Message,
    StructuredOutputError,
)
from honcho_grpc.store import memory

SESSION_HISTORY_TOKENS = 4096


@dataclass(frozen=True)
class Level:
    prefetch: int          # conclusions fetched per group (explicit, derived)
    messages: int          # message search hits
    tool_iterations: int   # 0: no tool loop
    max_tokens: int


LEVELS = {
    "minimal": Level(prefetch=10, messages=5, tool_iterations=0, max_tokens=400),
    "low": Level(prefetch=25, messages=10, tool_iterations=2, max_tokens=1500),
    "medium": Level(prefetch=25, messages=15, tool_iterations=3, max_tokens=2000),
    "high": Level(prefetch=40, messages=20, tool_iterations=5, max_tokens=3000),
    "max": Level(prefetch=60, messages=30, tool_iterations=8, max_tokens=4000),
}


@dataclass
class Question:
    workspace_id: str
    observer_id: str
    target_id: str
    query: str
    session_id: str | None = None
    level: str = "low"
    response_format: dict[str, Any] | None = None


@dataclass
class Gathered:
    view: Viewpoint
    observer_card: list[str] = field(default_factory=list)
    target_card: list[str] = field(default_factory=list)
    explicit: list[model.Conclusion] = field(default_factory=list)
    derived: list[model.Conclusion] = field(default_factory=list)
    summary: str = ""
    recent: list[model.Message] = field(default_factory=list)
    hits: list[model.Message] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.target_card or self.explicit or self.derived or self.summary
                    or self.recent or self.hits)

    def conclusion_ids(self) -> list[str]:
        return [r.conclusion_id for r in (*self.explicit, *self.derived)]


async def gather(pool: asyncpg.Pool, embedder: Embedder, q: Question) -> Gathered:
    """Everything the answer may draw on. The reads are independent, so they run at once
    (each on its own pooled connection); the query is embedded once, in a thread, and the
    conclusion and message searches start as soon as its vector is there."""
    level = LEVELS[q.level]
    ws, obs, tgt = q.workspace_id, q.observer_id, q.target_id
    vector = asyncio.ensure_future(embedder.embed_one(q.query))
    try:
        # Who may see what, first (one read, none when a peer asks about itself): message
        # search is filtered by it rather than after it, so it returns its full count.
        view = await viewpoint(pool, ws, obs, tgt)
        target_card, observer_card, conclusions, session, hits = await all_of(
            memory.peer_card(pool, ws, obs, tgt),
            memory.peer_card(pool, ws, obs, obs) if obs != tgt else nothing(),
            _conclusions(pool, q, vector, level.prefetch),
            _session_view(pool, ws, q.session_id) if q.session_id else nothing(),
            # Message search for specifics: only the target's own words, from sessions the
            # observer shared with them (the global view, observer == target, sees all).
            search_messages(pool, embedder, Scope(ws, peer_id=tgt), q.query,
                            view.message_filters(), level.messages, vector=vector))
    finally:
        vector.cancel()
    g = Gathered(view, target_card=target_card.entries if target_card else [],
                 observer_card=observer_card.entries if observer_card else [])
    g.explicit = [r for r in conclusions if r.level == "explicit"][:level.prefetch]
    g.derived = [r for r in conclusions if r.level != "explicit"][:level.prefetch]
    if session is not None:
        g.summary, g.recent = session
    g.hits = [h.message for h in hits]
    return g


async def _conclusions(pool: asyncpg.Pool, q: Question, vector: Awaitable[Any],
                       prefetch: int) -> list[model.Conclusion]:
    """The nearest to the query, and the newest too (a conclusion may not have its vector
    yet, and recency matters); valid ones only, no duplicates."""
    ws, obs, tgt = q.workspace_id, q.observer_id, q.target_id
    recent = asyncio.ensure_future(memory.conclusions_recent(pool, ws, obs, tgt, None, prefetch))
    try:
        nearest = await memory.conclusions_semantic(pool, ws, obs, tgt, None, await vector,
                                                    prefetch * 2, 0.0)
        return list({r.conclusion_id: r for r in (*nearest, *await recent)}.values())
    finally:
        recent.cancel()


async def _session_view(pool: asyncpg.Pool, ws: str,
                        session_id: str) -> tuple[str, list[model.Message]]:
    """The session's newest summary and the messages after it."""
    found = await memory.summaries(pool, ws, session_id)
    best = found.get("short") or found.get("long")
    after = best.last_message_seq if best else 0
    recent = await memory.recent_messages_within(pool, ws, session_id, after,
                                                 SESSION_HISTORY_TOKENS)
    return (best.content if best else ""), recent


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def system_prompt(q: Question, *, tools: bool = False) -> str:
    view = ("your own memory of yourself" if q.observer_id == q.target_id
            else f"what {q.observer_id} knows about {q.target_id}")
    prompt = (
        f"You answer questions about the peer '{q.target_id}' using only {view}, given "
        "below as conclusions, a peer card, session history and message excerpts. Be concise "
        "and specific; cite dates when they matter. When sources disagree, say so rather "
        "than choosing silently. If the context does not contain the answer, say plainly "
        f"that you don't have that information about {q.target_id}; never invent facts."
    )
    if tools:
        prompt += (
            "\n\nIf the context is not enough, look things up with the tools before "
            "answering: search conclusions and messages with a few different phrasings, "
            "list every match before counting anything, look for later changes (moved, "
            "cancelled, rescheduled), and check a derived conclusion's premises before "
            "relying on it. Answer as soon as you know; do not describe your lookups.")
    return prompt


def context_block(g: Gathered) -> str:
    parts: list[str] = []
    if g.target_card:
        parts.append("Peer card:\n" + "\n".join(f"- {e}" for e in g.target_card))
    if g.observer_card:
        parts.append("The asker's own card:\n" + "\n".join(f"- {e}" for e in g.observer_card))
    if g.explicit:
        parts.append("Conclusions (explicit):\n" + "\n".join(
            f"- [{_when(r.created_at)}] {r.content}" for r in g.explicit))
    if g.derived:
        parts.append("Conclusions (derived):\n" + "\n".join(
            f"- [{r.level}; id {r.conclusion_id}] {r.content}" for r in g.derived))
    if g.summary:
        parts.append("Session summary:\n" + g.summary)
    if g.recent:
        parts.append("Recent session messages:\n" + "\n".join(
            f"[{_when(r.created_at)}] {r.peer_id}: {r.content}" for r in g.recent))
    if g.hits:
        parts.append("Relevant message excerpts:\n" + "\n".join(
            f"[{_when(r.created_at)}] {r.peer_id}: {r.content}" for r in g.hits))
    return "\n\n".join(parts) if parts else "(nothing is known yet)"


def user_prompt(q: Question, g: Gathered, findings: list[Finding] | None = None) -> str:
    fmt = ""
    if q.response_format:
        fmt = ("\n\nAnswer with JSON only, matching this JSON Schema:\n"
               + json.dumps(q.response_format))
    looked_up = ""
    if findings:
        looked_up = ("\n\nLookups made for this question, and what they returned:\n\n"
                     + "\n\n".join(f.as_text() for f in findings))
    return f"Context:\n{context_block(g)}{looked_up}\n\nQuestion: {q.query}{fmt}"


# -- answering ------------------------------------------------------------------------------

@dataclass
class Answer:
    """Filled in while the answer streams; complete once the stream ends."""

    input_tokens: int = 0
    output_tokens: int = 0
    conclusion_ids: list[str] = field(default_factory=list)
    finish_reason: str = "stop"


async def require_parties(pool: asyncpg.Pool, q: Question) -> None:
    """The asker, the peer asked about and (when given) the session exist: NOT_FOUND else."""
    await peers.require(pool, q.workspace_id, *dict.fromkeys((q.observer_id, q.target_id)))
    if q.session_id:
        await sessions.require(pool, q.workspace_id, q.session_id)


async def stream_answer(pool: asyncpg.Pool, embedder: Embedder, llm: LLMProvider, q: Question,
                        answer: Answer) -> AsyncGenerator[str, None]:
    """Yield the answer's text as it is produced by the configured provider (any of
    honcho_grpc.providers.llm, the offline `local` one included)."""
    g = await gather(pool, embedder, q)
    answer.conclusion_ids = g.conclusion_ids()
    async for piece in llm_answer(llm, q, g, answer, Toolbox(pool, embedder, g.view)):
        yield piece


async def llm_answer(llm: LLMProvider, q: Question, g: Gathered, answer: Answer,
                     toolbox: Toolbox) -> AsyncGenerator[str, None]:
    """The provider's answer, streamed as the provider produces it: tool rounds first
    (from `low` up), whose text is forwarded at once; when a round calls no tool its text was
    the answer. Usage adds up every call. With a response_format the answer always comes from
    a last structured call (a reply in the tool rounds is free text), and it is checked to be
    a JSON object."""
    level = LEVELS[q.level]
    outcome = LoopOutcome()
    if level.tool_iterations:
        asked = [Message("system", system_prompt(q, tools=True)),
                 Message("user", user_prompt(q, g))]
        rounds = tool_loop(llm, asked, toolbox, level.tool_iterations, level.max_tokens,
                           outcome)
        try:
            async for piece in rounds:
                # Forwarded before the round ends, so that a direct answer streams at once.
                # If the round then calls a tool, what it said ("let me look that up") stays
                # sent: it cannot be taken back, and holding every round's text until its end
                # would delay every direct answer to its last token. With a response_format
                # the client must get the JSON only, so the rounds' text is not forwarded.
                if not q.response_format:
                    yield piece
        finally:
            await rounds.aclose()  # a cancelled client stops the provider call at once
        _add_usage(answer, outcome.usage.input_tokens, outcome.usage.output_tokens)
        answer.conclusion_ids = list(dict.fromkeys([*answer.conclusion_ids,
                                                    *toolbox.surfaced]))
        if outcome.answer is not None and outcome.answer.text.strip() \
                and not q.response_format:
            answer.finish_reason = outcome.answer.finish_reason
            return
    messages = [Message("system", system_prompt(q)),
                Message("user", user_prompt(q, g, outcome.findings))]
    if q.response_format:
        yield await _json_answer(llm, messages, q, answer)
        return
    reply = Completion("")
    pieces = stream_reply(llm, messages, reply, max_tokens=level.max_tokens,
                          lead=outcome.separator())
    try:
        async for piece in pieces:
            yield piece
    finally:
        await pieces.aclose()  # a cancelled client stops the provider call at once
    _add_usage(answer, reply.usage.input_tokens, reply.usage.output_tokens)
    answer.finish_reason = reply.finish_reason


async def _json_answer(llm: LLMProvider, messages: list[Message], q: Question,
                       answer: Answer) -> str:
    done = await llm.complete(messages, max_tokens=LEVELS[q.level].max_tokens,
                              response_schema=q.response_format)
    _add_usage(answer, done.usage.input_tokens, done.usage.output_tokens)
    try:
        data = json.loads(done.text)
    except ValueError as exc:
        # The provider claimed success with something that is not JSON: its failure, not
        # the caller's (UNAVAILABLE with LLM_INVALID_OUTPUT, see server/errors.py).
        raise StructuredOutputError("the answer is not JSON", done.text) from exc
    if not isinstance(data, dict):
        raise StructuredOutputError("the answer is JSON but not an object", done.text)
    return json.dumps(data)


def _add_usage(answer: Answer, input_tokens: int, output_tokens: int) -> None:
    answer.input_tokens += input_tokens
    answer.output_tokens += output_tokens
