"""The dialectic's tools: what a model may look up in the asking peer's memory before it
answers, and the bounded loop that lets it.

Every lookup sees what the prefetch sees, no more: valid conclusions the observer holds about
the target, and the target's own messages in sessions the observer shared with them (all of
them when a peer asks about itself). Tool arguments are model output, so they are checked,
limits are capped, and a bad call gets an error text back instead of failing the answer.
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
MAX_CALLS_PER_TURN = 4      # more in one turn get an error text, not a lookup
SEARCH_LIMIT = (10, 40)     # (default, cap)
DATE_LIMIT = (20, 50)


@dataclass(frozen=True)
class Viewpoint:
    """Who asks about whom, and which sessions' messages they may see (None: all of them,
    when a peer asks about itself)."""

    workspace_id: str
    observer_id: str
    target_id: str
    sessions: frozenset[str] | None

    def session_list(self) -> list[str] | None:
        return None if self.sessions is None else sorted(self.sessions)

    def message_filters(self) -> dict[str, Any] | None:
        """The visibility rule in the search filter language (an empty list admits nothing)."""
        sessions = self.session_list()
        return None if sessions is None else {"session_id": {"in": sessions}}


async def viewpoint(pool: asyncpg.Pool, workspace_id: str, observer_id: str,
                    target_id: str) -> Viewpoint:
    sessions = None if observer_id == target_id else frozenset(
        await memory.sessions_of_peer(pool, workspace_id, observer_id))
    return Viewpoint(workspace_id, observer_id, target_id, sessions)


class BadArguments(ValueError):
    """A tool call the model got wrong; the message goes back to the model."""


def tool_specs(target_id: str) -> list[ToolSpec]:
    query = {"type": "string", "description": "What to look for, in plain words."}

    def limit(default: int, cap: int) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": cap,
                "description": f"How many results (default {default}, at most {cap})."}

    return [
        ToolSpec("search_conclusions",
                 f"Semantic search over the conclusions known about {target_id} (facts and "
                 "reasoning drawn from past conversations). Try other phrasings to find more.",
                 {"type": "object", "required": ["query"],
                  "properties": {"query": query, "limit": limit(*SEARCH_LIMIT)}}),
        ToolSpec("search_messages",
                 f"Keyword and semantic search over {target_id}'s own messages; best for "
                 "exact words, names, numbers and dates.",
                 {"type": "object", "required": ["query"],
                  "properties": {"query": query, "limit": limit(*SEARCH_LIMIT)}}),
        ToolSpec("messages_by_date",
                 f"{target_id}'s messages sent between two ISO 8601 dates or date-times "
                 "(both inclusive; either may be left out), oldest first.",
                 {"type": "object",
                  "properties": {"start": {"type": "string", "description": "e.g. 2024-05-01"},
                                 "end": {"type": "string", "description": "e.g. 2024-05-31"},
                                 "limit": limit(*DATE_LIMIT)}}),
        ToolSpec("get_premises",
                 "The premises a derived (deductive, inductive) conclusion was reasoned from "
                 "and the messages a conclusion was drawn from: check a derived conclusion "
                 "before relying on it.",
                 {"type": "object", "required": ["conclusion_id"],
                  "properties": {"conclusion_id": {"type": "string"}}}),
    ]


# -- argument checks ------------------------------------------------------------------------

def _text(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadArguments(f"'{name}' must be a non-empty string")
    if len(value) > MAX_QUERY_CHARS:
        raise BadArguments(f"'{name}' is longer than {MAX_QUERY_CHARS} characters")
    return value.strip()


def _limit(args: Mapping[str, Any], bounds: tuple[int, int]) -> int:
    default, cap = bounds
    value = args.get("limit", default)
    if value is None:
        return default
    # JSON has one number type: 5.0 is 5; True is not a number here.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadArguments(f"'limit' must be an integer from 1 to {cap}")
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


# -- results as text -------------------------------------------------------------------------

def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def conclusion_line(r: model.Conclusion) -> str:
    state = "; superseded" if r.invalidated_at is not None else ""
    return (f"- [id {r.conclusion_id}; {r.level}{state}; {_when(r.created_at)}] "
            f"{r.content}")


def message_line(r: model.Message) -> str:
    return (f"- [{_when(r.created_at)}; session {r.session_id}] {r.peer_id}: "
            f"{_clip(r.content, MAX_MESSAGE_CHARS)}")


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
                "messages_by_date": self.messages_by_date,
                "get_premises": self.get_premises}

    async def run(self, call: ToolCall) -> str:
        tool = self.tools().get(call.name)
        if tool is None:
            return f"error: there is no tool {call.name!r}; use one of {sorted(self.tools())}"
        try:
            return _clip(await tool(call.arguments), MAX_TOOL_CHARS)
        except BadArguments as exc:
            return f"error: {exc}"

    def _surface(self, rows: list[model.Conclusion]) -> None:
        for r in rows:
            if r.invalidated_at is None and r.conclusion_id not in self.surfaced:
                self.surfaced.append(r.conclusion_id)

    async def search_conclusions(self, args: Mapping[str, Any]) -> str:
        query, limit = _text(args, "query"), _limit(args, SEARCH_LIMIT)
        v = self.view
        vector = await self.embedder.embed_one(query)
        rows = await memory.conclusions_semantic(self.pool, v.workspace_id, v.observer_id,
                                                 v.target_id, None, vector, limit, 0.0)
        self._surface(rows)
        return "\n".join(map(conclusion_line, rows)) or "No conclusions match."

    async def search_messages(self, args: Mapping[str, Any]) -> str:
        query, limit = _text(args, "query"), _limit(args, SEARCH_LIMIT)
        v = self.view
        hits = await search_messages(self.pool, self.embedder,
                                     Scope(v.workspace_id, peer_id=v.target_id), query,
                                     v.message_filters(), limit)
        return "\n".join(message_line(h.message) for h in hits) or "No messages match."

    async def messages_by_date(self, args: Mapping[str, Any]) -> str:
        start = _moment(args, "start", end=False)
        end = _moment(args, "end", end=True)
        limit = _limit(args, DATE_LIMIT)
        if start is None and end is None:
            raise BadArguments("give 'start', 'end' or both")
        if start is not None and end is not None and start >= end:
            raise BadArguments("'start' must be before 'end'")
        v = self.view
        # One more than asked, to say whether the range holds more.
        rows = await memory.messages_of_peer_between(self.pool, v.workspace_id, v.target_id,
                                                     v.session_list(), start, end, limit + 1)
        if not rows:
            return "No messages in that range."
        more = ("\n(more messages in this range: narrow it to see them)"
                if len(rows) > limit else "")
        return "\n".join(map(message_line, rows[:limit])) + more

    async def get_premises(self, args: Mapping[str, Any]) -> str:
        conclusion_id = _text(args, "conclusion_id")
        v = self.view
        found = await memory.conclusions_of_pair(self.pool, v.workspace_id, v.observer_id,
                                                 v.target_id, [conclusion_id])
        if not found:
            raise BadArguments(f"no conclusion {conclusion_id!r} is known about {v.target_id}")
        head = found[0]
        premises = await memory.conclusions_of_pair(self.pool, v.workspace_id, v.observer_id,
                                                    v.target_id, list(head.premise_ids))
        sources = await memory.messages_by_ids(self.pool, v.workspace_id,
                                               list(head.source_message_ids),
                                               v.session_list())
        self._surface([head, *premises])
        parts = ["Conclusion:\n" + conclusion_line(head)]
        parts.append("Premises:\n" + ("\n".join(map(conclusion_line, premises))
                                      or "(none: it was not reasoned from other conclusions)"))
        if sources:
            parts.append("Drawn from messages:\n" + "\n".join(map(message_line, sources)))
        return "\n\n".join(parts)


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


async def run_calls(toolbox: Toolbox, calls: list[ToolCall]) -> list[str]:
    """Every call gets a result (providers want one per call id); past the per-turn cap, an
    error text instead of a lookup."""
    ran = await asyncio.gather(*(toolbox.run(c) for c in calls[:MAX_CALLS_PER_TURN]))
    skipped = [f"error: skipped; at most {MAX_CALLS_PER_TURN} lookups per turn"] * max(
        0, len(calls) - MAX_CALLS_PER_TURN)
    return [*ran, *skipped]


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


async def tool_loop(llm: LLMProvider, messages: list[Message], toolbox: Toolbox,
                    iterations: int, max_tokens: int,
                    outcome: LoopOutcome) -> AsyncGenerator[str, None]:
    """Ask with tools offered, run what the model calls, feed the results back; at most
    `iterations` rounds. Every round is streamed and its text yielded as it arrives, so a
    round that calls no tool has streamed the answer already (`outcome.answer`), and the
    rounds end there."""
    specs = tool_specs(toolbox.view.target_id)
    turns = list(messages)
    for _ in range(iterations):
        reply = Completion("")
        pieces = stream_reply(llm, turns, reply, max_tokens=max_tokens, tools=specs,
                              lead=outcome.separator())
        try:
            async for piece in pieces:
                outcome.tail = piece
                yield piece
        except StructuredOutputError:
            # A tool call whose arguments are not JSON: the round's calls are lost with it
            # (its text was sent already), so no error text can go back to the call. Answer
            # from what was found so far.
            break
        finally:
            await pieces.aclose()
        outcome.usage.input_tokens += reply.usage.input_tokens
        outcome.usage.output_tokens += reply.usage.output_tokens
        if not reply.tool_calls:
            outcome.answer = reply
            break
        results = await run_calls(toolbox, reply.tool_calls)
        turns.append(Message("assistant", reply.text, tool_calls=tuple(reply.tool_calls)))
        turns += [Message("tool", r, tool_call_id=c.id)
                  for c, r in zip(reply.tool_calls, results, strict=True)]
        outcome.findings += [Finding(c, r) for c, r in zip(reply.tool_calls, results,
                                                             strict=True)]
