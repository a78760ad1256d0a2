"""Everything the worker asks of the language model: prompts, output schemas and the calls,
in one place, so the tasks never touch a provider directly and a change in the provider
interface is fixed here only.

Providers come from `honcho_grpc.providers.llm.build_llm`. Conclusions are shown to the model
under short numbers ([1], [2] ...) and mapped back here, so a model can only cite what it was
shown. Retries of a failing provider happen twice over by design: the provider's own (short,
within one task) and the queue's (backoff across attempts, then `failed`, retryable).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

from opentelemetry.trace import SpanKind

from honcho_grpc.domain.dialectic_tools import (
    Finding,
    Toolbox,
    findings_text,
    run_round,
    tool_specs,
)
from honcho_grpc.model import ConclusionLevel
from honcho_grpc.providers.llm import (
    Completion,
    LLMError,
    LLMProvider,
    Message,
    StructuredOutputError,
    TaskRouter,
    ToolSpec,
)
from honcho_grpc.providers.llm.structured import parse_structured
from honcho_grpc.settings import Settings
from honcho_grpc.telemetry import llm_span
from honcho_grpc.worker.values import (
    Conclusion,
    Derived,
    DreamPlan,
    Fact,
    PermanentError,
    Usage,
)

log = logging.getLogger(__name__)

CARD_PREFIXES = ("IDENTITY:", "ATTRIBUTE:", "RELATIONSHIP:", "INSTRUCTION:")
MAX_CARD_ENTRIES = 40
MAX_CARD_ENTRY_CHARS = 200
MAX_FACT_CHARS = 1000


class ReasoningError(RuntimeError):
    """The model's answer could not be used (retried by the queue)."""


class Truncated(ReasoningError):
    """The answer stopped at its output limit: whatever it holds is cut, never stored (a
    summary aside: it keeps the whole sentences of `text`). Carries the bill, `usage`."""

    def __init__(self, message: str, usage: Usage, text: str = "") -> None:
        super().__init__(message, usage)
        self.usage = usage
        self.text = text  # the cut answer

    def __str__(self) -> str:
        return str(self.args[0])


# A truncated answer is asked once more with this many times the room (up to the ceiling);
# cut again, an extraction splits its batch in halves (each starting with the larger room),
# a summary keeps the whole sentences it got to, any other task fails and the queue retries
# it later.
ROOM_GROWTH = 2
MAX_OUTPUT_CEILING = 16384


# -- prompts and schemas ----------------------------------------------------------------------

FACTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"explicit": {"type": "array", "items": {
        "type": "object",
        "properties": {"about": {"type": "string"}, "content": {"type": "string"},
                       "said_at": {"type": "string"}},
        "required": ["content", "said_at"], "additionalProperties": False}}},
    "required": ["explicit"], "additionalProperties": False,
}

CARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"card": {"type": "array", "items": {"type": "string"}}},
    "required": ["card"], "additionalProperties": False,
}

_CITED = {"type": "object", "properties": {
    "content": {"type": "string"}, "premises": {"type": "array", "items": {"type": "integer"}}},
    "required": ["content", "premises"], "additionalProperties": False}

DREAM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "deductive": {"type": "array", "items": _CITED},
        "inductive": {"type": "array", "items": _CITED},
        "contradictions": {"type": "array", "items": _CITED},
        "superseded": {"type": "array", "items": {
            "type": "object",
            "properties": {"old": {"type": "integer"}, "new": {"type": "integer"}},
            "required": ["old", "new"], "additionalProperties": False}},
    },
    "required": ["deductive", "inductive", "contradictions", "superseded"],
    "additionalProperties": False,
}

# Why this prompt: the facts are the only memory of the conversation most reads will see, so
# each must stand alone months later (who, what, when), cover what each target was told as
# well as what it said (so "what did you recommend me?" has an answer), and keep changes as
# changes. One call covers every speaker of a stretch of conversation (the worker joins their
# pending work, worker/queue.py join_stretch): the model reads the lines once and files each
# fact under its target. The worked examples fix the style; they use made-up peers, unquoted,
# so the targets stay the quoted ids of the prompt.
FACTS_PROMPT = """You record what a conversation reveals about its participants, so that an \
assistant can remember it later. Targets: {targets}.

Read every new line. Facts about a target come from what the target says, and from what
the others tell, ask, recommend, promise or report to the target or about the target.
Lines under "Earlier" were recorded already: use them only to understand the new lines.

Rules:
- One fact per item, atomic and self-contained: name the target by its exact id (never
  "I", "you", "he", "she", "the user") and keep the context that makes it useful later
  (who else, what, where, when, why). "about" is the id of the target the fact is about.
- Turn relative dates ("yesterday", "next Friday", "last year") into absolute ones using the
  timestamp of the line; keep names, numbers and quantities exactly.
- A change is recorded as a change ("X moved from Paris to Berlin in May 2024"), not only
  as the new value.
- What others said to a target is attributed ("bob recommended the novel Dune to X"); it
  is not presented as the target's own view.
- No guesses about feelings or motives that were not stated; no greetings, thanks or
  filler. Only the targets: nothing about other speakers.
- said_at: the timestamp of the line the fact comes from (YYYY-MM-DD HH:MM:SS), copied.
- Nothing worth remembering: {{"explicit": []}}.
{custom}
Example, for the targets ana and tom:
2024-03-04 18:02:11 ana: we finally adopted the puppy yesterday, her name is Miso
2024-03-04 18:02:40 tom: congrats! try the vet on Rue Pasteur, she is great with puppies
2024-03-04 18:03:05 ana: will do. I can't walk her in the mornings though, I start at 7 now
gives
- about ana: ana adopted a puppy named Miso on 2024-03-03 (said_at 2024-03-04 18:02:11)
- about ana: tom recommended to ana the vet on Rue Pasteur for her puppy (said_at
  2024-03-04 18:02:40)
- about tom: tom knows a vet on Rue Pasteur who is good with puppies (said_at
  2024-03-04 18:02:40)
- about ana: ana starts work at 7 in the morning as of March 2024, so cannot walk Miso in
  the mornings (said_at 2024-03-04 18:03:05)

Answer with JSON only: {{"explicit": [{{"about": "...", "content": "...", \
"said_at": "..."}}]}}"""

SUMMARY_PROMPT = """Write the {kind} summary of a conversation.

Build on the previous summary (it covers everything before the new messages) and fold in the
new messages: one chronological narrative that keeps the explicit facts (names, dates,
numbers, decisions, preferences) and who said what.{extra}
Use at most {words} words. Answer with the summary text only."""

LONG_EXTRA = ("\nAlso capture each participant's emotional state, personality and the "
              "recurring themes.")

# Why these rules: a card is read on every dialectic and context call, so it must stay short,
# stable and trustworthy -- entries change only when a fact changes them, and instructions
# are only what the peer asked for, never what the model infers.
CARD_PROMPT = """You keep the peer card of "{observed}": the few durable facts an assistant
should always have in mind about {observed}. At most {limit} entries, each one line starting
with one of IDENTITY:, ATTRIBUTE:, RELATIONSHIP:, INSTRUCTION:.

Rules:
- IDENTITY is name, age, pronouns, home, occupation; ATTRIBUTE is a lasting trait,
  preference, skill, health fact or ongoing situation; RELATIONSHIP names a person and how
  they relate to {observed}; INSTRUCTION is only how {observed} explicitly asked to be
  treated or answered, never a guess.
- Keep the current entries unless a new fact changes or contradicts one: then rewrite that
  entry (with the date when it matters, e.g. "Lives in Berlin (since May 2024)").
- Add an entry only for what will still matter in months: no one-off events, moods,
  plans already done, nor facts about other people beyond their relation.
- Merge duplicates; keep wording short and factual; when full, drop the least durable.
- New facts are newest first; a newer one wins over an older one.

Current card:
{card}

New facts:
{facts}

Answer with JSON only: {{"card": ["..."]}}"""

# Why: the dream is where the memory gets deductions, patterns and updates, so each item must
# be checkable -- dated premises, citations -- and the rules the domain enforces
# (honcho_grpc/domain/dreams.py: newer by when it was said, two premises for a pattern or a
# contradiction) are stated so a good model does not waste output on what will be refused.
DREAM_PROMPT = """You consolidate what is known about "{observed}". The numbered conclusions
below are ordered by when they were said, oldest first; the date is when {observed} said or
was told it.

1. deductive: conclusions that follow with certainty from one or more of them; cite the
   numbers.
2. inductive: patterns (preferences, habits, tendencies) supported by at least two of them;
   cite every one you rely on.
3. contradictions: two or more that cannot all be true and that no later one settles; cite
   them all.
4. superseded: a later conclusion updates an earlier one (moved, changed job, changed
   preference, a number that changed): {{"old": n, "new": m}} where m was said strictly
   later than n. Never supersede a newer statement with an older one.
Only cite numbers from the list. Do not restate conclusions that already exist.
The user turn shows {observed}'s peer card and the messages the newest conclusions were drawn
from: use them to read a conclusion in context (who said it, when, what it answered).{lookups}

Conclusions:
{listing}

Answer with JSON only, matching the schema."""

# Why offer lookups: a supersession or a contradiction often turns on what was said around a
# statement, which the listing does not show; bounded rounds keep the cost known.
DREAM_LOOKUPS = """
When deciding an item needs more than is shown (was a plan carried out, is an older
statement really replaced, what else was said about it), look it up with the tools first:
at most {rounds} rounds, only what you need. Then answer."""

# The final call after lookups: what they found, bounded, in the user turn.
MAX_FINDINGS_CHARS = 16_000
DREAM_CALLS_PER_ROUND = 4


# -- the adapter ----------------------------------------------------------------------------

P = ParamSpec("P")
T = TypeVar("T")
Step: TypeAlias = Callable[Concatenate["Reasoner", P], Awaitable[tuple[T, Usage]]]


def _traced(step: str) -> Callable[[Step[P, T]], Step[P, T]]:
    """A span per reasoning step with its token bill (a remote provider's own call span
    nests below it)."""
    def wrap(method: Step[P, T]) -> Step[P, T]:
        async def run(self: Reasoner, /, *args: P.args, **kwargs: P.kwargs) -> tuple[T, Usage]:
            with llm_span(f"reason {step}", system=self.system, operation="reason",
                          model=self.model, kind=SpanKind.INTERNAL,
                          attributes={"honcho.reasoning.step": step}) as call:
                value, usage = await method(self, *args, **kwargs)
                call.usage(usage.input_tokens, usage.output_tokens)
                return value, usage
        functools.update_wrapper(run, method)
        return run
    return wrap


@dataclass(frozen=True)
class Route:
    """Where one worker task's calls go: its provider (model, fallback and effort are the
    provider's, see providers/llm/tasks.py) and its output budget."""

    llm: LLMProvider
    max_output_tokens: int
    model: str = ""


WORKER_TASKS = ("extraction", "card", "summary", "dream")


class Reasoner:
    """The model calls of the worker: every step sends its prompt through
    `LLMProvider.complete` (with a JSON schema when structured), whichever provider is
    configured, the offline `local` one included. Usage is the provider's token count, one
    call per request. Each task has its own route (LLM_<TASK>_* settings)."""

    def __init__(self, llm: LLMProvider, *, max_output_tokens: int = 2048, system: str = "",
                 model: str = "", routes: dict[str, Route] | None = None) -> None:
        self.llm = llm
        self.max_output_tokens = max_output_tokens
        # For the spans: which provider and model answer (gen_ai.system, request model).
        self.system = system or "unknown"
        self.model = model
        self.routes = {t: Route(llm, max_output_tokens, model) for t in WORKER_TASKS}
        self.routes.update(routes or {})
        # Tasks whose budget was set for them (a summary otherwise sizes its own).
        self._budgeted = {t for t, r in (routes or {}).items()
                          if r.max_output_tokens != max_output_tokens}

    @classmethod
    def from_settings(cls, settings: Settings) -> Reasoner:
        local = settings.llm.provider == "local"
        router = TaskRouter(settings.llm)
        default = settings.llm.max_output_tokens
        routes = {task: Route(router.for_task(task), router.budget(task, default),
                              "" if local else router.model(task))
                  for task in WORKER_TASKS}
        return cls(router.default, max_output_tokens=default,
                   system="honcho.local" if local else settings.llm.provider,
                   model="" if local else settings.llm.model, routes=routes)

    @_traced("derive_facts")
    async def derive_facts(self, targets: list[str], lines: list[str],
                           custom_instructions: str = "", *,
                           earlier: list[str] | None = None) -> tuple[list[Fact], Usage]:
        """Explicit facts about each of `targets` from transcript lines ("time speaker:
        text"), in one call; `earlier` lines are context already recorded. A truncated
        answer is asked again with more room, then for each half of the lines."""
        custom = f"\nAdditional instructions:\n{custom_instructions}\n" \
            if custom_instructions else ""
        system = FACTS_PROMPT.format(targets=", ".join(f'"{t}"' for t in targets),
                                     custom=custom)
        head = "Earlier:\n" + "\n".join(f"(earlier) {line}" for line in earlier) + \
            "\n\nNew messages:\n" if earlier else ""
        return await self._facts(system, head, targets, lines,
                                 self.routes["extraction"].max_output_tokens)

    async def _facts(self, system: str, head: str, targets: list[str], lines: list[str],
                     room: int) -> tuple[list[Fact], Usage]:
        usage = Usage()
        try:
            data, u = await self._json("extraction", system, head + "\n".join(lines),
                                       FACTS_SCHEMA, room=room)
        except Truncated as exc:
            usage.add(exc.usage)
            if len(lines) < 2:
                raise
            log.info("extraction truncated twice: asking for each half of %d lines", len(lines))
            half = len(lines) // 2
            facts: list[Fact] = []
            for part in (lines[:half], lines[half:]):
                found, u = await self._facts(system, head, targets, part, room * ROOM_GROWTH)
                facts += found
                usage.add(u)
            return facts, usage
        usage.add(u)
        return facts_from(data, targets), usage

    @_traced("summarize")
    async def summarize(self, kind: str, previous: str, lines: list[str],
                        max_words: int) -> tuple[str, Usage]:
        system = SUMMARY_PROMPT.format(kind=kind, words=max_words,
                                       extra=LONG_EXTRA if kind == "long" else "")
        user = f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n" \
            + "\n".join(lines)
        route = self.routes["summary"]
        room = route.max_output_tokens if "summary" in self._budgeted else max(256, max_words * 2)
        try:
            text, usage = await self._roomy_text("summary", system, user, room=room)
        except Truncated as exc:
            # Cut twice: a third call would be cut again (as the queue's retries would), and
            # a narrative cut short still summarises what it got to.
            text, usage = whole_sentences(exc.text), exc.usage
            if not text:
                raise  # nothing written (a model that spent its room thinking): retried
            log.info("summary cut twice (%s): keeping %d of its %d characters", exc,
                     len(text), len(exc.text))
        return text.strip(), usage

    @_traced("update_card")
    async def update_card(self, observed: str, card: list[str],
                          facts: list[str]) -> tuple[list[str], Usage]:
        prompt = CARD_PROMPT.format(observed=observed, limit=MAX_CARD_ENTRIES,
                                    card="\n".join(card) or "(empty)",
                                    facts="\n".join(f"- {f}" for f in facts))
        data, usage = await self._json("card", prompt, "Update the card.", CARD_SCHEMA)
        return clean_card([str(e) for e in data.get("card") or []]), usage

    @_traced("dream")
    async def dream(self, observed: str, conclusions: list[Conclusion], *,
                    card: list[str] | None = None, messages: list[str] | None = None,
                    toolbox: Toolbox | None = None,
                    rounds: int = 0) -> tuple[DreamPlan, Usage]:
        """Consolidate `conclusions` (oldest first) with the card and the source `messages`
        (transcript lines) in view. With a toolbox and rounds, the model may look things up
        before it answers (`_dream_with_lookups`); otherwise it is one call."""
        listing = "\n".join(f"[{i}] ({c.level}, {c.created_at[:16].replace('T', ' ')}) "
                             f"{c.content}"
                            for i, c in enumerate(conclusions, 1))
        lookups = DREAM_LOOKUPS.format(rounds=rounds) if toolbox and rounds else ""
        system = DREAM_PROMPT.format(observed=observed, listing=listing, lookups=lookups)
        user = (f"Peer card of {observed}:\n" + ("\n".join(card or []) or "(empty)")
                + "\n\nMessages the newest conclusions come from:\n"
                + ("\n".join(messages or []) or "(none)") + "\n\nConsolidate.")
        if toolbox is None or rounds <= 0:
            data, usage = await self._json("dream", system, user, DREAM_SCHEMA)
        else:
            data, usage = await self._dream_with_lookups(system, user, toolbox, rounds)
        return plan_from(data, conclusions), usage

    async def _dream_with_lookups(self, system: str, user: str, toolbox: Toolbox,
                                  rounds: int) -> tuple[dict[str, Any], Usage]:
        """Up to `rounds` calls, each offering the lookups and the answer: an answer ends it
        (one call when nothing needs looking up). When the rounds run out, or an answer is
        cut or not JSON, one last call without tools answers from what the lookups found."""
        usage = Usage()
        specs = tool_specs(toolbox.view.target_id)
        turns = [Message("system", system), Message("user", user)]
        findings: list[Finding] = []
        for _ in range(rounds):
            try:
                reply, u = await self._complete("dream", turns, DREAM_SCHEMA, tools=specs)
            except StructuredOutputError:
                break  # a lookup whose arguments are not JSON: answer from what was found
            usage.add(u)
            if not reply.tool_calls:
                if reply.finish_reason != "length":
                    try:
                        return parse_structured(reply.text, DREAM_SCHEMA), usage
                    except StructuredOutputError:
                        log.info("dream answer among lookups is not valid JSON: asking again")
                break
            findings += await run_round(toolbox, reply, DREAM_CALLS_PER_ROUND, turns)
        found = findings_text(findings)[:MAX_FINDINGS_CHARS]
        if found:
            user += "\n\nWhat your lookups found:\n" + found
        data, u = await self._json("dream", system, user, DREAM_SCHEMA)
        usage.add(u)
        return data, usage

    # -- provider calls ------------------------------------------------------------------

    async def _complete(self, task: str, messages: list[Message],
                        schema: dict[str, Any] | None, *, max_tokens: int | None = None,
                        tools: list[ToolSpec] | None = None) -> tuple[Completion, Usage]:
        """One call on the task's route, with its bill."""
        route = self.routes[task]
        try:
            completion = await route.llm.complete(
                messages, max_tokens=max_tokens or route.max_output_tokens,
                response_schema=schema, tools=tools)
        except StructuredOutputError:
            raise  # a model may well answer better next time: the queue retries
        except LLMError as exc:
            if not exc.retryable and exc.status_code is not None and \
                    400 <= exc.status_code < 500:
                # Bad request, key or model: retrying the same call cannot help.
                raise PermanentError(str(exc)) from exc
            raise
        u = completion.usage
        return completion, Usage(u.input_tokens, u.output_tokens, 1)

    async def _text(self, task: str, system: str, user: str, *, max_tokens: int | None = None,
                    schema: dict[str, Any] | None = None) -> tuple[str, Usage]:
        """The model's answer; Truncated (carrying the bill) when it hit its limit."""
        room = max_tokens or self.routes[task].max_output_tokens
        completion, usage = await self._complete(
            task, [Message("system", system), Message("user", user)], schema, max_tokens=room)
        if completion.finish_reason == "length":
            raise Truncated(f"answer cut at {room} tokens", usage, completion.text or "")
        return completion.text or "", usage

    async def _roomy_text(self, task: str, system: str, user: str, *, room: int,
                          schema: dict[str, Any] | None = None) -> tuple[str, Usage]:
        """`_text`, asked once more with more room when the answer is cut; a second cut
        raises Truncated carrying the bill of both attempts."""
        try:
            return await self._text(task, system, user, max_tokens=room, schema=schema)
        except Truncated as exc:
            first = exc.usage
        room = min(room * ROOM_GROWTH, max(MAX_OUTPUT_CEILING, room))
        try:
            text, usage = await self._text(task, system, user, max_tokens=room, schema=schema)
        except Truncated as exc:
            first.add(exc.usage)
            raise Truncated(str(exc), first, exc.text) from exc
        usage.add(first)
        return text, usage

    async def _json(self, task: str, system: str, user: str, schema: dict[str, Any], *,
                    room: int | None = None) -> tuple[dict[str, Any], Usage]:
        text, usage = await self._roomy_text(task, system, user, schema=schema,
                                             room=room or self.routes[task].max_output_tokens)
        try:
            return parse_structured(text, schema), usage
        except StructuredOutputError as exc:
            raise ReasoningError(str(exc)) from exc


# A sentence ends at . ! ? or an ellipsis before a blank (or the end), and at the full-width
# marks of Chinese and Japanese whatever follows; closing quotes and brackets go with it.
_SENTENCE_END = re.compile(r"""[.!?\u2026]["'\u201d\u2019)\]]*(?=\s|$)"""
                           r"""|[\u3002\uff01\uff1f]["'\u201d\u2019\u300d\u300f\uff09)]*""")


def whole_sentences(text: str) -> str:
    """A cut answer up to the end of its last whole sentence, when that keeps at least half
    of it; else up to its last blank (the word it stopped in may be cut); else all of it (a
    language without blanks)."""
    text = text.strip()
    ends = list(_SENTENCE_END.finditer(text))
    if ends and ends[-1].end() * 2 >= len(text):
        return text[:ends[-1].end()]
    head, blank, _ = text.rpartition(" ")
    return head.rstrip() if blank and head.strip() else text


def facts_from(data: dict[str, Any], targets: list[str]) -> list[Fact]:
    """The answer's facts about the targets (one target: every fact is about it); a fact
    filed under anyone else is dropped -- its speaker's own extraction covers it."""
    items = data.get("explicit") or []
    facts = [Fact(str(i.get("content", "")).strip()[:MAX_FACT_CHARS],
                  str(i.get("said_at", "")).strip()[:40],
                  targets[0] if len(targets) == 1 else str(i.get("about", "")).strip())
             for i in items if isinstance(i, dict)]
    return [f for f in facts if f.content and f.about in targets]


def plan_from(data: dict[str, Any], shown: list[Conclusion]) -> DreamPlan:
    """Map the model's numbered citations back to ids, dropping anything out of range."""
    def ids(numbers: Any) -> list[str]:
        out = []
        for n in numbers if isinstance(numbers, list) else []:
            if isinstance(n, int) and 1 <= n <= len(shown) and shown[n - 1].id not in out:
                out.append(shown[n - 1].id)
        return out

    plan = DreamPlan()
    kinds: tuple[tuple[str, ConclusionLevel], ...] = (
        ("deductive", "deductive"), ("inductive", "inductive"),
        ("contradictions", "contradiction"))
    for key, level in kinds:
        for item in data.get(key) or []:
            if not isinstance(item, dict):
                continue
            content = str(item.get("content", "")).strip()[:MAX_FACT_CHARS]
            premises = ids(item.get("premises"))
            if content and premises:
                plan.derived.append(Derived(content, level, premises))
    for item in data.get("superseded") or []:
        if isinstance(item, dict):
            pair = ids([item.get("old")]) + ids([item.get("new")])
            if len(pair) == 2 and pair[0] != pair[1]:
                plan.superseded.append((pair[0], pair[1]))
    return plan


def clean_card(entries: list[str]) -> list[str]:
    """Prefixed, short, case-insensitively unique, at most 40 entries."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in entries:
        entry = " ".join(str(raw).split())[:MAX_CARD_ENTRY_CHARS]
        if not entry.upper().startswith(CARD_PREFIXES):
            entry = f"ATTRIBUTE: {entry}"
        prefix, _, rest = entry.partition(":")
        entry = f"{prefix.upper()}: {rest.strip()}"
        key = entry.lower()
        if rest.strip() and key not in seen:
            seen.add(key)
            out.append(entry)
    return out[:MAX_CARD_ENTRIES]
