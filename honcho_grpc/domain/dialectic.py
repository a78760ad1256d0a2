"""Dialectic: answer a peer's question about a target peer from what the observer knows.

Flow: gather (peer cards, semantic matches and the newest among explicit and derived
conclusions with the earlier values they replaced, session summary and recent messages,
message search over every speaker the observer may see) -> prompt -> from `low` up, a
bounded tool loop (see dialectic_tools) -> the answer, streamed. Every provider, the offline
`local` one included, gets the same prompts and tools. With nothing known, the prompt asks
the model to abstain rather than invent.

The prompt covers the kinds of question that go wrong without guidance (the original
Honcho's dialectic prompt was read as a specification): advice (stated preferences first),
listing and counting (several searches, duplicates merged, items numbered), changed values
(the newest said wins, the change is mentioned), contradictions (both, dated), time (every
conclusion and message shows when it was said; relative dates resolve against it) and how
to say "I don't know".

Tool rounds are streamed, but a round's text is held back until it is clearly the answer
(dialectic_tools._held_round): a round that ends in tool calls said a preamble ("Let me
search...") that the caller never sees. When a round answers without a lookup, its stream
is the answer, with no second call. Only when the rounds run out does a last, tool-less call
stream the answer, with the lookups' results folded into its prompt as plain text (any
provider accepts that; Anthropic rejects tool turns in a request that offers no tools).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from honcho_grpc import model
from honcho_grpc.domain import peers, sessions
from honcho_grpc.domain.aio import all_of, nothing
from honcho_grpc.domain.dialectic_tools import (
    Budget,
    Finding,
    LoopOutcome,
    Toolbox,
    Viewpoint,
    findings_text,
    stream_reply,
    tool_loop,
    viewpoint,
    when,
)
from honcho_grpc.domain.search import Scope, search_messages
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.providers.llm import TaskRouter
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
    tool_iterations: int   # rounds of lookups; 0: no tool loop
    calls_per_round: int   # lookups the model may ask for at once
    max_tokens: int        # output budget of each call

    def budget(self) -> Budget:
        return Budget(self.tool_iterations, self.calls_per_round, self.max_tokens)


# `low` searches several times (a counting question needs three or four lookups, then maybe
# a look at the turns around a hit); higher levels may follow longer chains. Output budgets
# leave room for the numbered list a count asks for, and for a reasoning model's hidden
# tokens at the higher levels.
LEVELS = {
    "minimal": Level(prefetch=10, messages=8, tool_iterations=0, calls_per_round=0,
                     max_tokens=500),
    "low": Level(prefetch=25, messages=12, tool_iterations=5, calls_per_round=4,
                 max_tokens=2000),
    "medium": Level(prefetch=30, messages=15, tool_iterations=6, calls_per_round=5,
                    max_tokens=3000),
    "high": Level(prefetch=40, messages=20, tool_iterations=8, calls_per_round=6,
                  max_tokens=4000),
    "max": Level(prefetch=60, messages=30, tool_iterations=12, calls_per_round=8,
                 max_tokens=6000),
}
MAX_EARLIER = 20  # replaced values shown beside the conclusions that replaced them


def level_of(q: Question) -> Level:
    """The level's budget for this question: the one place a level is chosen."""
    return LEVELS[q.level]


def routed(llm: LLMProvider, q: Question) -> tuple[LLMProvider, Level]:
    """The provider and budget of the question's level: with a TaskRouter (the server's),
    the level's own model, effort and output budget (LLM_DIALECTIC_<LEVEL>_*)."""
    level = level_of(q)
    if isinstance(llm, TaskRouter):
        task = f"dialectic_{q.level}"
        return llm.for_task(task), replace(level, max_tokens=llm.budget(task, level.max_tokens))
    return llm, level


@dataclass
class Question:
    workspace_id: str
    observer_id: str
    target_id: str
    query: str
    session_id: str | None = None
    level: str = "low"
    response_format: dict[str, Any] | None = None
    # A scoped question (domain/scopes.py): only these sessions' messages and the explicit
    # conclusions drawn in them; no peer cards (they are built from every session).
    sessions: frozenset[str] | None = None


@dataclass
class Gathered:
    view: Viewpoint
    observer_card: list[str] = field(default_factory=list)
    target_card: list[str] = field(default_factory=list)
    explicit: list[model.Conclusion] = field(default_factory=list)
    derived: list[model.Conclusion] = field(default_factory=list)
    earlier: list[model.Conclusion] = field(default_factory=list)  # replaced by a shown one
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
    level = level_of(q)
    ws, obs, tgt = q.workspace_id, q.observer_id, q.target_id
    vector = asyncio.ensure_future(embedder.embed_one(q.query))
    try:
        # Who may see what, first (one read, none when a peer asks about itself): message
        # search is filtered by it rather than after it, so it returns its full count.
        view = await viewpoint(pool, ws, obs, tgt, q.sessions)
        cards = q.sessions is None
        target_card, observer_card, conclusions, session, hits = await all_of(
            memory.peer_card(pool, ws, obs, tgt) if cards else nothing(),
            memory.peer_card(pool, ws, obs, obs) if cards and obs != tgt else nothing(),
            _conclusions(pool, q, view, vector, level.prefetch),
            _session_view(pool, ws, q.session_id) if q.session_id else nothing(),
            # Every speaker's words, from the sessions the observer was in (the global
            # view, observer == target, sees all): "what did you recommend me?" is answered
            # by the other side of the conversation.
            search_messages(pool, embedder, Scope(ws), q.query, view.message_filters(),
                            level.messages, vector=vector))
    finally:
        vector.cancel()
    g = Gathered(view, target_card=target_card.entries if target_card else [],
                 observer_card=observer_card.entries if observer_card else [])
    valid, g.earlier = conclusions
    g.explicit = _by_time([r for r in valid if r.level == "explicit"][:level.prefetch])
    g.derived = _by_time([r for r in valid if r.level != "explicit"][:level.prefetch])
    if session is not None:
        g.summary, g.recent = session
    g.hits = _by_time([h.message for h in hits])
    return g


Said = TypeVar("Said", model.Conclusion, model.Message)


def _by_time(rows: list[Said]) -> list[Said]:
    """Oldest first: the order in which things were said is what "newer" reads from."""
    return sorted(rows, key=lambda r: r.created_at)


async def _conclusions(pool: asyncpg.Pool, q: Question, view: Viewpoint,
                       vector: Awaitable[Any], prefetch: int
                       ) -> tuple[list[model.Conclusion], list[model.Conclusion]]:
    """The nearest to the query, and the newest too (a conclusion may not have its vector
    yet, and recency matters), valid ones only, no duplicates, nearest first; and the
    superseded conclusions they replaced, so that a changed fact shows its history. Inside
    the view's boundary only, when it has one."""
    ws, obs, tgt = q.workspace_id, q.observer_id, q.target_id
    within = view.conclusion_sessions()
    recent = asyncio.ensure_future(memory.conclusions_recent(pool, ws, obs, tgt, within,
                                                             prefetch))
    try:
        nearest = await memory.conclusions_semantic(pool, ws, obs, tgt, within, await vector,
                                                    prefetch * 2, 0.0)
        valid = list({r.conclusion_id: r for r in (*nearest, *await recent)}.values())
    finally:
        recent.cancel()
    earlier = await memory.conclusions_replaced_by(
        pool, ws, obs, tgt, [r.conclusion_id for r in valid], MAX_EARLIER) if valid else []
    return valid, [r for r in earlier if view.admits(r)]


async def _session_view(pool: asyncpg.Pool, ws: str,
                        session_id: str) -> tuple[str, list[model.Message]]:
    """The session's newest summary and the messages after it."""
    found = await memory.summaries(pool, ws, session_id)
    best = found.get("short") or found.get("long")
    after = best.last_message_seq if best else 0
    recent = await memory.recent_messages_within(pool, ws, session_id, after,
                                                 SESSION_HISTORY_TOKENS)
    return (best.content if best else ""), recent


# -- the prompt -----------------------------------------------------------------------------
# The local provider reads the first quoted id of the instructions as the subject, so the
# target's id is the first thing quoted; and it takes instructions that mention summarising
# for a summary task, so these never do.

def system_prompt(q: Question, *, tools: bool = False, now: datetime | None = None) -> str:
    tgt, obs = q.target_id, q.observer_id
    view = ("your own memory of yourself" if obs == tgt else f"what {obs} knows about {tgt}")
    first_person = (f"In the question, \"I\", \"me\" and \"my\" mean {obs}, and \"you\" "
                    f"usually means whoever {obs} was talking with.")
    if obs != tgt:
        first_person = f"The question is asked by {obs}. " + first_person
    prompt = f"""You answer questions about the peer '{tgt}' using only {view}: the memory \
given below (conclusions drawn from conversations, a peer card, session history and message \
excerpts from every speaker){" and the lookup tools over the same memory" if tools else ""}. \
{first_person}

How to answer:
- Use only what memory shows; quote names, numbers and dates exactly as found.
- Time: every conclusion and message shows when it was said. Resolve relative dates \
("yesterday", "next Friday", "two weeks ago") against the time of the message that used \
them, not against today, and give the resolved date. Use the current time only for how \
long ago something was.
- Advice, recommendations or opinions: first find what {tgt} said they prefer, like, \
avoid, need or asked for ("always", "never", "I prefer"), and fit the answer to it.
- Lists and counts ("how many", "all the", "which"): look for every item, not the first \
few. Merge mentions of the same item (other wording, another date, the same event told \
twice) into one. Number the unique items, each with its date, and give the count as that \
number.
- Changed values: when one thing has had several values (a move, a new job, a rescheduled \
date), the most recently said one holds. Answer with it, and mention the earlier value and \
when it changed. A conclusion marked superseded or listed under earlier values is history, \
not the current state.
- Contradictions: when two statements conflict and neither is a later update of the other, \
give both with their dates and say that they conflict instead of choosing one.
- Derived (deductive, inductive) conclusions are reasoning, not statements: trust them as \
far as the facts they rest on.
- Nothing known: if memory has nothing on the question, say in one sentence that you don't \
have that information about {tgt}. If it has related context but not the detail asked, say \
what is known and that the detail is not. Never guess or fill gaps with plausible details.
- Be direct and concise; no preamble, and do not describe how you looked things up."""
    if tools:
        prompt += """

Lookups: when the context does not settle the question, look things up before answering, \
several lookups at once when they are independent. search_conclusions finds what is known; \
search_messages and grep_messages find what was said, by anyone (grep for exact names, \
numbers, units and for listing every mention); message_context shows the turns around a \
hit (what was asked, answered or recommended); start/end and messages_by_date narrow to a \
period; get_premises and get_dependents follow reasoning both ways. For a list or count, \
search at least three times with different words (the category, its instances, the unit) \
before counting. For a date or value, also search for a later change ("changed", \
"moved", "cancelled", "rescheduled", "now"). Answer as soon as you know."""
    moment = now or datetime.now(UTC)
    return prompt + f"\n\nCurrent time: {when(moment)} UTC."


def _conclusion_tag(r: model.Conclusion, replaced: dict[str, list[str]]) -> str:
    parts = [f"said {when(r.created_at)}", f"id {r.conclusion_id}"]
    if r.level != "explicit":
        parts.insert(0, r.level)
    if r.conclusion_id in replaced:
        parts.append("newer value, replaces " + ", ".join(replaced[r.conclusion_id]))
    if r.invalidated_at is not None:
        parts.append(f"superseded by newer {r.superseded_by}" if r.superseded_by
                     else "superseded")
    return f"- [{'; '.join(parts)}] {r.content}"


def context_block(g: Gathered) -> str:
    replaced: dict[str, list[str]] = {}
    for old in g.earlier:
        if old.superseded_by:
            replaced.setdefault(old.superseded_by, []).append(old.conclusion_id)
    parts: list[str] = []
    if g.target_card:
        parts.append("Peer card:\n" + "\n".join(f"- {e}" for e in g.target_card))
    if g.observer_card:
        parts.append("The asker's own card:\n" + "\n".join(f"- {e}" for e in g.observer_card))
    if g.explicit:
        parts.append("Conclusions (explicit, oldest first):\n" + "\n".join(
            _conclusion_tag(r, replaced) for r in g.explicit))
    if g.earlier:
        parts.append("Earlier values (replaced by a newer conclusion):\n" + "\n".join(
            _conclusion_tag(r, replaced) for r in g.earlier))
    if g.derived:
        parts.append("Conclusions (derived, oldest first):\n" + "\n".join(
            _conclusion_tag(r, replaced) for r in g.derived))
    if g.summary:
        parts.append("Session summary:\n" + g.summary)
    if g.recent:
        parts.append("Recent session messages:\n" + "\n".join(
            f"[{when(r.created_at)}] {r.peer_id}: {r.content}" for r in g.recent))
    if g.hits:
        parts.append("Relevant message excerpts (every speaker, oldest first):\n" + "\n".join(
            f"[{when(r.created_at)}; session {r.session_id}; id {r.message_id}] "
            f"{r.peer_id}: {r.content}" for r in g.hits))
    return "\n\n".join(parts) if parts else "(nothing is known yet)"


def user_prompt(q: Question, g: Gathered, findings: list[Finding] | None = None) -> str:
    fmt = ""
    if q.response_format:
        fmt = ("\n\nAnswer with JSON only, matching this JSON Schema:\n"
               + json.dumps(q.response_format))
    looked_up = ""
    if findings:
        looked_up = ("\n\nLookups made for this question, and what they returned:\n\n"
                     + findings_text(findings))
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
    (from `low` up), whose text reaches the caller once it is clearly the answer; when a
    round calls no tool its text was the answer. Usage adds up every call. With a
    response_format the answer always comes from a last structured call (a reply in the tool
    rounds is free text), and it is checked to be a JSON object."""
    # The level decides the budget, and through the router its model and effort.
    llm, level = routed(llm, q)
    outcome = LoopOutcome()
    if level.tool_iterations:
        asked = [Message("system", system_prompt(q, tools=True)),
                 Message("user", user_prompt(q, g))]
        rounds = tool_loop(llm, asked, toolbox, level.budget(), outcome)
        try:
            async for piece in rounds:
                # With a response_format the client must get the JSON only, so the rounds'
                # text is not forwarded.
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
        yield await _json_answer(llm, messages, level.max_tokens, q, answer)
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


async def _json_answer(llm: LLMProvider, messages: list[Message], max_tokens: int,
                       q: Question, answer: Answer) -> str:
    done = await llm.complete(messages, max_tokens=max_tokens,
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
