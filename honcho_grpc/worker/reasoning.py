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
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

from opentelemetry.trace import SpanKind

from honcho_grpc.model import ConclusionLevel
from honcho_grpc.providers.llm import (
    LLMError,
    LLMProvider,
    Message,
    StructuredOutputError,
    build_llm,
)
from honcho_grpc.providers.llm.structured import parse_structured
from honcho_grpc.settings import Settings
from honcho_grpc.telemetry import llm_span
from honcho_grpc.worker.values import Conclusion, Derived, DreamPlan, PermanentError, Usage

log = logging.getLogger(__name__)

CARD_PREFIXES = ("IDENTITY:", "ATTRIBUTE:", "RELATIONSHIP:", "INSTRUCTION:")
MAX_CARD_ENTRIES = 40
MAX_CARD_ENTRY_CHARS = 200
MAX_FACT_CHARS = 1000


class ReasoningError(RuntimeError):
    """The model's answer could not be used (retried by the queue)."""


# -- prompts and schemas ----------------------------------------------------------------------

FACTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"explicit": {"type": "array", "items": {
        "type": "object", "properties": {"content": {"type": "string"}},
        "required": ["content"], "additionalProperties": False}}},
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

FACTS_PROMPT = """You extract explicit facts about one participant of a conversation.

Target participant: {observed}

Rules:
- Only facts the target states or clearly reveals about themselves in their own messages;
  lines by others are context only.
- Each fact is atomic, self-contained and names the target by their exact id ("{observed}"),
  never "I", "he" or "she".
- Turn relative dates into absolute ones using the message timestamps.
- No speculation, no facts about other participants, no greetings or chit-chat.
- Return {{"explicit": []}} when there is nothing worth remembering.
{custom}
Answer with JSON only: {{"explicit": [{{"content": "..."}}]}}"""

SUMMARY_PROMPT = """Write the {kind} summary of a conversation.

Build on the previous summary (it covers everything before the new messages) and fold in the
new messages: one chronological narrative that keeps the explicit facts (names, dates,
numbers, decisions, preferences) and who said what.{extra}
Use at most {words} words. Answer with the summary text only."""

LONG_EXTRA = ("\nAlso capture each participant's emotional state, personality and the "
              "recurring themes.")

CARD_PROMPT = """Maintain the peer card of "{observed}": at most {limit} short entries, each
starting with one of IDENTITY:, ATTRIBUTE:, RELATIONSHIP:, INSTRUCTION: (e.g.
"IDENTITY: Name is Ana", "ATTRIBUTE: Vegetarian", "RELATIONSHIP: Sister of Leo",
"INSTRUCTION: Prefers short answers"). Keep lasting, important facts only; update entries
that the new facts change; drop what they contradict.

Current card:
{card}

New facts:
{facts}

Answer with JSON only: {{"card": ["..."]}}"""

DREAM_PROMPT = """You consolidate what is known about "{observed}". The numbered conclusions
below are ordered oldest first.

1. deductive: conclusions that follow with certainty from some of them; cite the numbers.
2. inductive: patterns (preferences, behaviours, tendencies) supported by two or more of them.
3. contradictions: pairs that cannot both be true and where no later statement settles it.
4. superseded: when a newer conclusion updates an older one (moved, changed job, changed
   preference), give {{"old": n, "new": m}} with m newer than n.
Only cite numbers from the list. Do not restate conclusions that already exist.

Conclusions:
{listing}

Answer with JSON only, matching the schema."""


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


class Reasoner:
    """The model calls of the worker: every step sends its prompt through
    `LLMProvider.complete` (with a JSON schema when structured), whichever provider is
    configured, the offline `local` one included. Usage is the provider's token count, one
    call per request."""

    def __init__(self, llm: LLMProvider, *, max_output_tokens: int = 2048, system: str = "",
                 model: str = "") -> None:
        self.llm = llm
        self.max_output_tokens = max_output_tokens
        # For the spans: which provider and model answer (gen_ai.system, request model).
        self.system = system or "unknown"
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Reasoner:
        local = settings.llm.provider == "local"
        return cls(build_llm(settings.llm), max_output_tokens=settings.llm.max_output_tokens,
                   system="honcho.local" if local else settings.llm.provider,
                   model="" if local else settings.llm.model)

    @_traced("derive_facts")
    async def derive_facts(self, observed: str, lines: list[str],
                           custom_instructions: str = "") -> tuple[list[str], Usage]:
        """Explicit facts about `observed` from transcript lines ("time speaker: text")."""
        custom = f"\nAdditional instructions:\n{custom_instructions}\n" \
            if custom_instructions else ""
        data, usage = await self._json(
            FACTS_PROMPT.format(observed=observed, custom=custom), "\n".join(lines),
            FACTS_SCHEMA)
        items = data.get("explicit") or []
        facts = [str(i.get("content", "")).strip()[:MAX_FACT_CHARS] for i in items
                 if isinstance(i, dict)]
        return [f for f in facts if f], usage

    @_traced("summarize")
    async def summarize(self, kind: str, previous: str, lines: list[str],
                        max_words: int) -> tuple[str, Usage]:
        system = SUMMARY_PROMPT.format(kind=kind, words=max_words,
                                       extra=LONG_EXTRA if kind == "long" else "")
        user = f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n" \
            + "\n".join(lines)
        text, usage = await self._text(system, user, max_tokens=max(256, max_words * 2))
        return text.strip(), usage

    @_traced("update_card")
    async def update_card(self, observed: str, card: list[str],
                          facts: list[str]) -> tuple[list[str], Usage]:
        prompt = CARD_PROMPT.format(observed=observed, limit=MAX_CARD_ENTRIES,
                                    card="\n".join(card) or "(empty)",
                                    facts="\n".join(f"- {f}" for f in facts))
        data, usage = await self._json(prompt, "Update the card.", CARD_SCHEMA)
        return clean_card([str(e) for e in data.get("card") or []]), usage

    @_traced("dream")
    async def dream(self, observed: str,
                    conclusions: list[Conclusion]) -> tuple[DreamPlan, Usage]:
        listing = "\n".join(f"[{i}] ({c.level}, {c.created_at[:10]}) {c.content}"
                            for i, c in enumerate(conclusions, 1))
        data, usage = await self._json(DREAM_PROMPT.format(observed=observed, listing=listing),
                                       "Consolidate.", DREAM_SCHEMA)
        return plan_from(data, conclusions), usage

    # -- provider calls ------------------------------------------------------------------

    async def _text(self, system: str, user: str, *, max_tokens: int | None = None,
                    schema: dict[str, Any] | None = None) -> tuple[str, Usage]:
        messages = [Message("system", system), Message("user", user)]
        try:
            completion = await self.llm.complete(
                messages, max_tokens=max_tokens or self.max_output_tokens,
                response_schema=schema)
        except StructuredOutputError:
            raise  # a model may well answer better next time: the queue retries
        except LLMError as exc:
            if not exc.retryable and exc.status_code is not None and \
                    400 <= exc.status_code < 500:
                # Bad request, key or model: retrying the same call cannot help.
                raise PermanentError(str(exc)) from exc
            raise
        u = completion.usage
        return completion.text or "", Usage(u.input_tokens, u.output_tokens, 1)

    async def _json(self, system: str, user: str,
                    schema: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        text, usage = await self._text(system, user, schema=schema)
        try:
            return parse_structured(text, schema), usage
        except StructuredOutputError as exc:
            raise ReasoningError(str(exc)) from exc


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
