"""The dialectic's tools: what a model may look up in the asking peer's memory before it
answers, and the bounded loop that lets it.

Every lookup sees what the prefetch sees, no more: valid conclusions the observer holds about
the target (superseded ones only as marked earlier values), and the messages of every speaker
in the sessions the observer was in (all sessions when a peer asks about itself), each
labelled with its speaker, session and time. Tool arguments are model output, so they are
checked, limits are capped, and a bad call gets an error text back instead of failing the
answer.

The tools follow the original Honcho dialectic's set (semantic memory search, message search
with and without dates, exact text search, the turns around a message, the reasoning chain
both ways), written against this store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from honcho_grpc import model
from honcho_grpc.domain.search import Scope, search_messages
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.providers.llm.base import (
    Completion,
    LLMProvider,
    Message,
    StructuredOutputError,
    ToolCall,
    ToolSpec,
    Usage,
)
from honcho_grpc.store import memory

MAX_TOOL_CHARS = 8000       # one tool result, as the model sees it
MAX_MESSAGE_CHARS = 2000    # one message quoted in a result
MAX_QUERY_CHARS = 1000
MAX_ID_CHARS = 200
SEARCH_LIMIT = (10, 40)     # (default, cap)
TEXT_LIMIT = (20, 50)
DATE_LIMIT = (20, 50)
AROUND_LIMIT = (3, 10)      # messages either side of one
DEPENDENTS_LIMIT = 30
# A round's text is held back until it is this long: a model announcing its lookups ("Let me
# search for that.") says less, and a round that ends in tool calls is not the answer. Past
# it, the text is taken for the answer and streams as it comes.
HOLD_CHARS = 240


@dataclass(frozen=True)
class Viewpoint:
    """Who asks about whom, and which sessions' messages they may see (None: all of them,
    when a peer asks about itself). `boundary`: the sessions a scoped question is confined
    to (domain/scopes.py; None: none), which `sessions` is already narrowed to; conclusions
    are then the explicit ones drawn in them."""

    workspace_id: str
    observer_id: str
    target_id: str
    sessions: frozenset[str] | None
    boundary: frozenset[str] | None = None

    def session_list(self) -> list[str] | None:
        return None if self.sessions is None else sorted(self.sessions)

    def conclusion_sessions(self) -> list[str] | None:
        """The sessions conclusion reads are confined to (store/memory.py's boundary)."""
        return None if self.boundary is None else sorted(self.boundary)

    def admits(self, c: model.Conclusion) -> bool:
        """Whether a conclusion looked up by id is inside the boundary."""
        return self.boundary is None or (c.level == "explicit"
                                         and c.session_id in self.boundary)

    def message_filters(self, start: datetime | None = None,
                        end: datetime | None = None) -> dict[str, Any] | None:
        """The visibility rule (and a time range) in the search filter language (an empty
        session list admits nothing)."""
        rules: list[dict[str, Any]] = []
        sessions = self.session_list()
        if sessions is not None:
            rules.append({"session_id": {"in": sessions}})
        if start is not None:
            rules.append({"created_at": {"gte": start.isoformat()}})
        if end is not None:
            rules.append({"created_at": {"lt": end.isoformat()}})
        if not rules:
            return None
        return rules[0] if len(rules) == 1 else {"AND": rules}


async def viewpoint(pool: asyncpg.Pool, workspace_id: str, observer_id: str,
                    target_id: str, boundary: frozenset[str] | None = None) -> Viewpoint:
    sessions = None if observer_id == target_id else frozenset(
        await memory.sessions_of_peer(pool, workspace_id, observer_id))
    if boundary is not None:
        sessions = boundary if sessions is None else sessions & boundary
    return Viewpoint(workspace_id, observer_id, target_id, sessions, boundary)


class BadArguments(ValueError):
    """A tool call the model got wrong; the message goes back to the model."""


def tool_specs(target_id: str) -> list[ToolSpec]:
    query = {"type": "string", "description": "What to look for, in plain words."}
    start = {"type": "string", "description": "Earliest date, inclusive: an ISO 8601 date "
             "or date-time such as 2024-05-01 (UTC unless an offset is given)."}
    end = {"type": "string", "description": "Latest date, inclusive, as for start."}
    conclusion = {"type": "string", "description": "A conclusion's id, as shown in [id ...]."}

    def limit(default: int, cap: int, what: str = "results") -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": cap,
                "description": f"How many {what} (default {default}, at most {cap})."}

    def obj(properties: dict[str, Any], *required: str) -> dict[str, Any]:
        return {"type": "object", "required": list(required), "properties": properties}

    return [
        ToolSpec("search_conclusions",
                 f"Semantic search over the conclusions known about {target_id} (facts and "
                 "reasoning drawn from past conversations, each with the time it was said). "
                 "Try other phrasings to find more.",
                 obj({"query": query, "limit": limit(*SEARCH_LIMIT)}, "query")),
        ToolSpec("search_messages",
                 "Search by meaning and keywords over the conversations' messages, every "
                 "speaker's (each hit names its speaker, session, time and id); start/end "
                 "keep only messages of that period.",
                 obj({"query": query, "start": start, "end": end,
                      "limit": limit(*SEARCH_LIMIT)}, "query")),
        ToolSpec("grep_messages",
                 "Exact text search over the conversations' messages, every speaker's: the "
                 "messages containing all the given words (any word form), or the literal "
                 "text when it has no words (\"$\", \"%\"). Best for names, numbers, units "
                 "and for listing every mention of something; newest matches shown.",
                 obj({"text": {"type": "string", "description": "Words or text to find."},
                      "start": start, "end": end, "limit": limit(*TEXT_LIMIT)}, "text")),
        ToolSpec("message_context",
                 "The messages just before and after a message in its conversation: what "
                 "was asked, answered or recommended around a hit.",
                 obj({"message_id": {"type": "string",
                                     "description": "A message id, as shown in [... id ...]."},
                      "before": limit(*AROUND_LIMIT, "messages before"),
                      "after": limit(*AROUND_LIMIT, "messages after")}, "message_id")),
        ToolSpec("messages_by_date",
                 "Every speaker's messages sent between two dates (give start, end or "
                 "both), oldest first.",
                 obj({"start": start, "end": end, "limit": limit(*DATE_LIMIT)})),
        ToolSpec("get_premises",
                 "What a conclusion rests on: the premises a derived (deductive, inductive) "
                 "conclusion was reasoned from, with their times, and the messages it was "
                 "drawn from. Check a derived conclusion before relying on it.",
                 obj({"conclusion_id": conclusion}, "conclusion_id")),
        ToolSpec("get_dependents",
                 "The other direction: the conclusions reasoned from this one (what "
                 "depends on it, e.g. whether a fact was later updated or contradicted).",
                 obj({"conclusion_id": conclusion}, "conclusion_id")),
    ]


# -- argument checks ------------------------------------------------------------------------

def _text(args: Mapping[str, Any], name: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadArguments(f"'{name}' must be a non-empty string")
    if len(value) > max_chars:
        raise BadArguments(f"'{name}' is longer than {max_chars} characters")
    return value.strip()


def _limit(args: Mapping[str, Any], bounds: tuple[int, int], name: str = "limit") -> int:
    default, cap = bounds
    value = args.get(name, default)
    if value is None:
        return default
    # JSON has one number type: 5.0 is 5; True is not a number here.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadArguments(f"'{name}' must be an integer from 1 to {cap}")
    return min(max(value, 1), cap)


def _moment(args: Mapping[str, Any], name: str, *, end: bool) -> datetime | None:
    """An ISO 8601 date or date-time as an instant (UTC when no offset is given). A bare date
    as an end means the end of that day, so the range includes it."""
    value = args.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise BadArguments(f"'{name}' must be an ISO 8601 date or date-time string")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time())
        else:
            moment = datetime.fromisoformat(value)
            moment += timedelta(microseconds=1) if end else timedelta()
    except ValueError as exc:
        raise BadArguments(f"'{name}' is not an ISO 8601 date or date-time: {value!r}") from exc
    except OverflowError as exc:  # the day after 9999-12-31
        raise BadArguments(f"'{name}' is out of range: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _period(args: Mapping[str, Any], *, required: bool
            ) -> tuple[datetime | None, datetime | None]:
    start, end = _moment(args, "start", end=False), _moment(args, "end", end=True)
    if required and start is None and end is None:
        raise BadArguments("give 'start', 'end' or both")
    if start is not None and end is not None and start >= end:
        raise BadArguments("'start' must be before 'end'")
    return start, end


# -- results as text -------------------------------------------------------------------------

def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def when(value: datetime) -> str:
    """A time as the model reads it; the weekday helps with "last Friday"."""
    return f"{value:%Y-%m-%d %a %H:%M}"


def conclusion_line(r: model.Conclusion) -> str:
    state = ""
    if r.invalidated_at is not None:
        state = (f"; superseded by newer {r.superseded_by}" if r.superseded_by
                 else "; superseded")
    return (f"- [id {r.conclusion_id}; {r.level}; said {when(r.created_at)}{state}] "
            f"{r.content}")


def message_line(r: model.Message) -> str:
    return (f"- [{when(r.created_at)}; session {r.session_id}; id {r.message_id}] "
            f"{r.peer_id}: {_clip(r.content, MAX_MESSAGE_CHARS)}")


def _messages(rows: Sequence[model.Message], none: str) -> str:
    return "\n".join(map(message_line, rows)) or none


# -- the tools -------------------------------------------------------------------------------

Tool = Callable[[Mapping[str, Any]], Awaitable[str]]


@dataclass
class Toolbox:
    """Runs the model's tool calls from one viewpoint; `surfaced` collects the ids of the
    valid conclusions the lookups showed it."""

    pool: asyncpg.Pool
    embedder: Embedder
    view: Viewpoint
    surfaced: list[str] = field(default_factory=list)

    def tools(self) -> dict[str, Tool]:
        return {"search_conclusions": self.search_conclusions,
                "search_messages": self.search_messages,
                "grep_messages": self.grep_messages,
                "message_context": self.message_context,
                "messages_by_date": self.messages_by_date,
                "get_premises": self.get_premises,
                "get_dependents": self.get_dependents}

    async def run(self, call: ToolCall) -> str:
        tool = self.tools().get(call.name)
        if tool is None:
            return f"error: there is no tool {call.name!r}; use one of {sorted(self.tools())}"
        try:
            return _clip(await tool(call.arguments), MAX_TOOL_CHARS)
        except BadArguments as exc:
            return f"error: {exc}"

    def _surface(self, rows: Sequence[model.Conclusion]) -> None:
        for r in rows:
            if r.invalidated_at is None and r.conclusion_id not in self.surfaced:
                self.surfaced.append(r.conclusion_id)

    async def _conclusion(self, args: Mapping[str, Any]) -> model.Conclusion:
        conclusion_id = _text(args, "conclusion_id", MAX_ID_CHARS)
        v = self.view
        found = await memory.conclusions_of_pair(self.pool, v.workspace_id, v.observer_id,
                                                 v.target_id, [conclusion_id])
        found = [c for c in found if v.admits(c)]
        if not found:
            raise BadArguments(f"no conclusion {conclusion_id!r} is known about {v.target_id}")
        return found[0]

    async def search_conclusions(self, args: Mapping[str, Any]) -> str:
        query, limit = _text(args, "query"), _limit(args, SEARCH_LIMIT)
        v = self.view
        vector = await self.embedder.embed_one(query)
        rows = await memory.conclusions_semantic(self.pool, v.workspace_id, v.observer_id,
                                                 v.target_id, v.conclusion_sessions(), vector,
                                                 limit, 0.0)
        self._surface(rows)
        return "\n".join(map(conclusion_line, rows)) or "No conclusions match."

    async def search_messages(self, args: Mapping[str, Any]) -> str:
        query, limit = _text(args, "query"), _limit(args, SEARCH_LIMIT)
        start, end = _period(args, required=False)
        v = self.view
        hits = await search_messages(self.pool, self.embedder, Scope(v.workspace_id), query,
                                     v.message_filters(start, end), limit)
        return _messages([h.message for h in hits], "No messages match.")

    async def grep_messages(self, args: Mapping[str, Any]) -> str:
        text, limit = _text(args, "text"), _limit(args, TEXT_LIMIT)
        start, end = _period(args, required=False)
        v = self.view
        rows, total = await memory.messages_containing(self.pool, v.workspace_id, text,
                                                       v.session_list(), start, end, limit)
        if not rows:
            return f"No messages contain {text!r}."
        more = (f"\n({total - len(rows)} older matches not shown: narrow the period with "
                "start/end to see them)" if total > len(rows) else "")
        count = "1 message contains" if total == 1 else f"{total} messages contain"
        return (f"{count} {text!r}; oldest first:\n"
                + _messages(rows, "") + more)

    async def message_context(self, args: Mapping[str, Any]) -> str:
        message_id = _text(args, "message_id", MAX_ID_CHARS)
        before = _limit(args, AROUND_LIMIT, "before")
        after = _limit(args, AROUND_LIMIT, "after")
        v = self.view
        rows = await memory.messages_around(self.pool, v.workspace_id, message_id,
                                            v.session_list(), before, after)
        if not rows:
            raise BadArguments(f"no message {message_id!r} is visible here")
        return _messages(rows, "")

    async def messages_by_date(self, args: Mapping[str, Any]) -> str:
        start, end = _period(args, required=True)
        limit = _limit(args, DATE_LIMIT)
        v = self.view
        # One more than asked, to say whether the range holds more.
        rows = await memory.messages_between(self.pool, v.workspace_id, v.session_list(),
                                             start, end, limit + 1)
        if not rows:
            return "No messages in that range."
        more = ("\n(more messages in this range: narrow it to see them)"
                if len(rows) > limit else "")
        return _messages(rows[:limit], "") + more

    async def get_premises(self, args: Mapping[str, Any]) -> str:
        head = await self._conclusion(args)
        v = self.view
        premises, sources = await asyncio.gather(
            memory.conclusions_of_pair(self.pool, v.workspace_id, v.observer_id,
                                       v.target_id, list(head.premise_ids)),
            memory.messages_by_ids(self.pool, v.workspace_id, list(head.source_message_ids),
                                   v.session_list()))
        premises = [c for c in premises if v.admits(c)]
        self._surface([head, *premises])
        parts = ["Conclusion:\n" + conclusion_line(head)]
        parts.append("Premises:\n" + ("\n".join(map(conclusion_line, premises))
                                      or "(none: it was not reasoned from other conclusions)"))
        if sources:
            parts.append("Drawn from messages:\n" + _messages(sources, ""))
        return "\n\n".join(parts)

    async def get_dependents(self, args: Mapping[str, Any]) -> str:
        head = await self._conclusion(args)
        v = self.view
        dependents = await memory.conclusions_resting_on(
            self.pool, v.workspace_id, v.observer_id, v.target_id, head.conclusion_id,
            DEPENDENTS_LIMIT)
        dependents = [c for c in dependents if v.admits(c)]
        self._surface([head, *dependents])
        return ("Conclusion:\n" + conclusion_line(head) + "\n\nReasoned from it:\n"
                + ("\n".join(map(conclusion_line, dependents))
                   or "(none: no conclusion rests on it)"))


# -- the loop --------------------------------------------------------------------------------

@dataclass
class Finding:
    """One lookup and what it returned, for the final answer's prompt."""

    call: ToolCall
    result: str

    def as_text(self) -> str:
        return f"{self.call.name}({json.dumps(self.call.arguments)}):\n{self.result}"


@dataclass
class LoopOutcome:
    """Filled in while the rounds stream; complete once they end."""

    findings: list[Finding] = field(default_factory=list)
    answer: Completion | None = None  # the model's own answer when it stopped looking up
    usage: Usage = field(default_factory=Usage)
    tail: str = ""  # the last piece of text yielded

    def separator(self) -> str:
        """What goes before more text: a paragraph break after text of an earlier round
        that did not end in one ("Let me check." then the answer)."""
        return "\n\n" if self.tail and not self.tail[-1].isspace() else ""


async def run_calls(toolbox: Toolbox, calls: list[ToolCall], cap: int) -> list[str]:
    """Every call gets a result (providers want one per call id); past the per-round cap, an
    error text instead of a lookup."""
    ran = await asyncio.gather(*(toolbox.run(c) for c in calls[:cap]))
    skipped = [f"error: skipped; at most {cap} lookups per turn"] * max(0, len(calls) - cap)
    return [*ran, *skipped]


async def run_round(toolbox: Toolbox, reply: Completion, cap: int,
                    turns: list[Message]) -> list[Finding]:
    """Run the lookups a reply asked for; `turns` gets the model's turn and a result for
    each of its calls, and the findings are returned (for a final call without tools)."""
    results = await run_calls(toolbox, reply.tool_calls, cap)
    turns.append(Message("assistant", reply.text, tool_calls=tuple(reply.tool_calls)))
    turns += [Message("tool", r, tool_call_id=c.id)
              for c, r in zip(reply.tool_calls, results, strict=True)]
    return [Finding(c, r) for c, r in zip(reply.tool_calls, results, strict=True)]


def findings_text(findings: Sequence[Finding]) -> str:
    return "\n\n".join(f.as_text() for f in findings)


async def stream_reply(llm: LLMProvider, messages: Sequence[Message], reply: Completion, *,
                       max_tokens: int, tools: Sequence[ToolSpec] | None = None,
                       lead: str = "") -> AsyncGenerator[str, None]:
    """One streamed call: its text pieces as they arrive (`lead` first, if there is any
    text), and `reply` filled with the whole of it. Closing this generator closes the
    provider's stream at once."""
    events = llm.stream(messages, max_tokens=max_tokens, tools=tools)
    said: list[str] = []
    try:
        async for event in events:
            if event.text:
                if lead and not said:
                    yield lead
                said.append(event.text)
                yield event.text
            if event.usage is not None:  # the last event
                reply.text, reply.usage = "".join(said), event.usage
                reply.tool_calls = event.tool_calls
                reply.finish_reason = event.finish_reason or "stop"
    finally:
        await events.aclose()


@dataclass(frozen=True)
class Budget:
    """How far one answer's lookups may go: rounds of tool calls, calls per round, and the
    output tokens of each call."""

    rounds: int
    calls_per_round: int
    max_tokens: int


async def _held_round(pieces: AsyncGenerator[str, None], reply: Completion,
                      outcome: LoopOutcome) -> AsyncGenerator[str, None]:
    """A tool round's text for the caller. There is no kind of delta for "the model thinking
    aloud", and what was sent cannot be taken back, so the text is held until it is clearly
    the answer: the round ended without a tool call, or it grew past HOLD_CHARS (a lookup's
    preamble is a sentence). A round that ends in tool calls with less said is a preamble
    and is not sent at all (the model still sees it in its own turn)."""
    held: list[str] = []
    size = 0
    lead = outcome.separator()  # after text an earlier round sent
    released = False
    async for piece in pieces:
        if not released:
            held.append(piece)
            size += len(piece)
            if size <= HOLD_CHARS:
                continue
            released = True
            piece = "".join(held)
        if lead:
            yield lead
            lead = ""
        outcome.tail = piece
        yield piece
    if released or reply.tool_calls:
        return
    for piece in held:
        if lead:
            yield lead
            lead = ""
        outcome.tail = piece
        yield piece


async def tool_loop(llm: LLMProvider, messages: list[Message], toolbox: Toolbox,
                    budget: Budget, outcome: LoopOutcome) -> AsyncGenerator[str, None]:
    """Ask with tools offered, run what the model calls, feed the results back; at most
    `budget.rounds` rounds. Every round is streamed; its text reaches the caller as
    `_held_round` decides, so a round that calls no tool has given the answer already
    (`outcome.answer`), and the rounds end there."""
    specs = tool_specs(toolbox.view.target_id)
    turns = list(messages)
    for _ in range(budget.rounds):
        reply = Completion("")
        pieces = stream_reply(llm, turns, reply, max_tokens=budget.max_tokens, tools=specs)
        shown = _held_round(pieces, reply, outcome)
        try:
            async for piece in shown:
                yield piece
        except StructuredOutputError:
            # A tool call whose arguments are not JSON: the round's calls are lost with it,
            # so no error text can go back to the call. Answer from what was found so far.
            break
        finally:
            await shown.aclose()
            await pieces.aclose()
        outcome.usage.input_tokens += reply.usage.input_tokens
        outcome.usage.output_tokens += reply.usage.output_tokens
        if not reply.tool_calls:
            outcome.answer = reply
            break
        outcome.findings += await run_round(toolbox, reply, budget.calls_per_round, turns)
