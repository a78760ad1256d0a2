"""The offline `local` provider: an `LLMProvider` with no network and no weights,
deterministic (same request, same answer). Callers use it as they use OpenAI or Anthropic:
same messages, schemas and tools. It understands no meaning, only surface patterns of
English text: it cannot paraphrase, deduce, resolve "he"/"she", or read other languages.

It reads a chat as instructions (the system turns), the question (the text after a
"Question:" label in the last user turn, else that turn's last line unless it is a
transcript line), and context: every other line of the other turns, tool results included
(list markers, bracketed tags, headers, placeholders and JSON left out; the asker's own
card too, which is not about the subject). The subject is the first quoted id in the
instructions ('maya', "alice"). From these it recognises the task:

- tools offered (a search taking a `query`) without a response schema, nothing relevant in
  the context and no lookup made yet: it calls them (local_answer). With a schema it answers
  at once: what it would look up is what the prompt already shows it;
- a response schema with `deductive`/`inductive`/`contradictions`/`superseded` arrays: a
  dream over the numbered conclusions of the prompt (local_dream);
- instructions naming the peer-card prefixes: an updated card (local_card);
- instructions asking to summarise: an extractive summary within the stated word budget
  (local_summary);
- otherwise an answer quoting the relevant context, or an abstention (local_answer). With a
  response schema, `fill_schema` shapes it: strings get the answer, arrays facts extracted
  from the transcript lines of the context about the subject (local_facts), numbers their
  minimum or 0, booleans false, enums and consts their first value.

Usage counts the tokens it read and wrote, one call per request, as a remote model's bill
would; `stream` yields the answer word by word.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from honcho_grpc.providers.llm import local_answer, local_card, local_dream
from honcho_grpc.providers.llm.base import (
    Completion,
    Message,
    MessageLike,
    StreamEvent,
    StructuredOutputError,
    ToolCall,
    ToolSpec,
    Usage,
    as_messages,
)
from honcho_grpc.providers.llm.local_facts import facts_from_transcript
from honcho_grpc.providers.llm.local_summary import summarize
from honcho_grpc.providers.llm.local_text import parse_transcript_line
from honcho_grpc.providers.llm.schema import resolve, validate
from honcho_grpc.providers.tokens import count_tokens, encoding

# The question runs to the next blank line: a question of several lines is not context.
_QUESTION = re.compile(r"^[ \t]*(?:question|query|q)[ \t]*:[ \t]*"
                       r"(?P<q>\S[^\n]*(?:\n[ \t]*\S[^\n]*)*)", re.IGNORECASE | re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_TAG = re.compile(r"^\[[^\]]*\]\s*")
_QUOTED_ID = re.compile(r"""(?:'|"|\u2018|\u201c)([A-Za-z0-9_-]{1,512})(?:'|"|\u2019|\u201d)""")
_BUDGET = re.compile(r"\b(\d{1,5})\s+words\b", re.IGNORECASE)
_ASKER = re.compile(r"\basker\b", re.IGNORECASE)
_TIME_FIELD = re.compile(r"(?:^|_)(?:at|time|timestamp|date|when)$", re.IGNORECASE)
_ABOUT_FIELD = "about"  # an item property naming whom a fact is about (the line's speaker)
MAX_SCHEMA_DEPTH = 8  # nesting a structured answer is built to; deeper (recursion) is null


# -- reading the chat -------------------------------------------------------------------------

@dataclass
class Prompt:
    """What the provider reads from a chat."""

    instructions: str
    question: str
    context: list[str]
    looked_up: bool  # a tool result follows the question
    text: str  # everything, for usage accounting

    @property
    def subject(self) -> str | None:
        found = _QUOTED_ID.search(self.instructions)
        return found.group(1) if found else None


def _context_lines(body: str) -> list[str]:
    """Evidence lines of one turn: no headers, placeholders, JSON, tool errors, nor what
    is listed under a header about the asker."""
    lines, about_asker = [], False
    for raw in body.splitlines():
        line = _TAG.sub("", _LIST_MARKER.sub("", raw.strip()))
        if line.endswith(":"):
            about_asker = bool(_ASKER.search(line))
            continue
        if not raw.strip():
            about_asker = False
        placeholder = line.startswith("(") and line.endswith(")")  # "(none)"
        if not line or about_asker or placeholder or line.startswith(("{", "[", "error:")):
            continue
        lines.append(line)
    return lines


def _split_question(body: str) -> tuple[str, str]:
    """(question, the rest) of the last user turn."""
    labelled = list(_QUESTION.finditer(body))
    if labelled:
        last = labelled[-1]
        return last["q"].strip(), body[:last.start()] + body[last.end():]
    rest, _, last_line = body.strip().rpartition("\n")
    if not last_line or parse_transcript_line(last_line):
        return "", body  # a transcript to read, not a question
    return last_line.strip(), rest


def read_prompt(messages: list[Message]) -> Prompt:
    instructions = "\n".join(m.content for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    last_user = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), -1)
    question, lines = "", []
    for i, turn in enumerate(turns):
        body = turn.content
        if i == last_user:
            question, body = _split_question(body)
        lines += _context_lines(body)
    looked_up = any(t.role == "tool" for t in turns[last_user + 1:])
    text = "\n".join(m.content for m in messages)
    return Prompt(instructions, question, list(dict.fromkeys(lines)), looked_up, text)


# -- the tasks --------------------------------------------------------------------------------

def _speakers(prompt: Prompt) -> set[str] | None:
    """Whom facts are about: the subject, else the transcript speakers the instructions
    name; None, meaning everyone, when they name none."""
    if prompt.subject:
        return {prompt.subject}
    spoken = {p[0] for line in prompt.context if (p := parse_transcript_line(line))}
    named = {s for s in spoken if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", prompt.instructions)}
    return named or None


def _budget_words(prompt: Prompt, max_tokens: int) -> int:
    stated = _BUDGET.search(prompt.instructions)
    return int(stated.group(1)) if stated else max(1, max_tokens * 3 // 4)


def _summary_words(prompt: Prompt, max_tokens: int) -> int | None:
    """The word budget when the instructions ask for a summary, else None (an answer)."""
    if re.search(r"\bsummar", prompt.instructions, re.IGNORECASE):
        return _budget_words(prompt, max_tokens)
    return None


def _text(prompt: Prompt, max_tokens: int) -> str:
    return _text_within(prompt, _summary_words(prompt, max_tokens))


def _text_within(prompt: Prompt, summary_words: int | None) -> str:
    if summary_words is not None:
        return summarize(prompt.context, summary_words)
    return local_answer.compose_answer(prompt.question, local_answer.evidence(prompt.context),
                                       subject=prompt.subject)


def _value(prompt: Prompt, schema: dict[str, Any], max_tokens: int) -> Any:
    """The structured answer for `schema`."""
    if local_dream.is_dream_request(schema):
        return local_dream.dream(prompt.subject, local_dream.listed(prompt.instructions))
    if local_card.is_card_request(prompt.instructions):
        return fill_schema(schema, "", local_card.card_from_request(prompt.instructions))
    about = _ABOUT_FIELD in _item_properties(schema)
    # A schema filing facts under whom they are about asks for every quoted target at once.
    targets = set(_QUOTED_ID.findall(prompt.instructions)) if about else None
    facts = facts_from_transcript(prompt.context, targets or _speakers(prompt))
    return fill_schema(schema, _text(prompt, max_tokens), facts)


def _item_properties(schema: dict[str, Any]) -> dict[str, Any]:
    """The properties of the items of the first array property of an object schema."""
    for sub in (schema.get("properties") or {}).values():
        if isinstance(sub, dict) and sub.get("type") == "array":
            items = sub.get("items")
            props = items.get("properties") if isinstance(items, dict) else None
            return props if isinstance(props, dict) else {}
    return {}


def _lookups(prompt: Prompt, tools: Sequence[ToolSpec] | None) -> list[ToolCall]:
    if not tools or prompt.looked_up:
        return []
    return local_answer.lookups(prompt.question, local_answer.evidence(prompt.context), tools,
                                prompt.subject)


def fill_schema(schema: Any, answer: str, items: Sequence[str],
                root: Any = None, depth: int = 0) -> Any:
    """A value shaped by `schema`: strings get `answer`, arrays `items` (as strings, or as
    objects whose first string property holds the item), numbers their minimum or 0,
    booleans false, enums and consts their first value. Callers' schemas reach it
    unchecked beyond the meta-schema: a `$ref` it cannot follow admits anything (the
    answer), and recursion stops at MAX_SCHEMA_DEPTH with null."""
    root = schema if root is None else root
    node = _resolved(schema, root)
    if node is None or depth > MAX_SCHEMA_DEPTH:
        return None
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and options:
            # The keywords beside the choice apply as well (the type, the properties).
            chosen = _resolved(options[0], root)
            if chosen is None:
                return None
            beside = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            return fill_schema({**beside, **chosen}, answer, items, root, depth + 1)
    if "const" in node:
        return node["const"]
    enum = node.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = _kind(node)
    if kind == "object":
        properties = node.get("properties")
        return {name: fill_schema(sub, answer, items, root, depth + 1)
                for name, sub in (properties.items() if isinstance(properties, dict) else ())}
    if kind == "array":
        return [_item(node.get("items"), item, root, depth + 1) for item in items]
    if kind in ("integer", "number"):
        low = node.get("minimum", 0)
        low = low if isinstance(low, int | float) and not isinstance(low, bool) \
            and math.isfinite(low) else 0
        return math.ceil(low) if kind == "integer" else low
    return {"boolean": False, "null": None}.get(kind, answer)


def _resolved(schema: Any, root: Any) -> dict[str, Any] | None:
    """`schema` as a dict with its `$ref` followed; {} (anything) for `true`; for a reference
    that leads nowhere (remote, or round in a circle) the keywords beside it, which still
    apply; None for `false` or what is not a schema."""
    if schema is True:
        return {}
    if not isinstance(schema, dict):
        return None
    try:
        node: Any = resolve(schema, root if isinstance(root, dict) else schema)
    except (ValueError, LookupError, TypeError):
        return {k: v for k, v in schema.items() if k != "$ref"}
    return {} if node is True else node if isinstance(node, dict) else None


def _kind(node: dict[str, Any]) -> str:
    kind = node.get("type", "object" if "properties" in node else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k != "null"), "null")
    return kind if isinstance(kind, str) else "string"


def _item(schema: Any, text: str, root: Any, depth: int) -> Any:
    node = _resolved(schema, root) if schema is not None else {}
    if not node or _kind(node) != "object":
        return text
    properties = node.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    # The text goes to the first string property (not the one naming whom it is about).
    text_field = next((n for n, s in properties.items() if n != _ABOUT_FIELD
                       and (r := _resolved(s, root)) and _kind(r) == "string"), None)
    item = {n: fill_schema(s, text, [], root, depth + 1) for n, s in properties.items()}
    speaker = str(getattr(text, "speaker", ""))
    if _ABOUT_FIELD in item and speaker:
        item[_ABOUT_FIELD] = speaker
    if text_field:
        item[text_field] = str(text)
    said_at = getattr(text, "said_at", "")
    for name in properties:
        # A string property asking when the item was said gets its line's timestamp.
        if said_at and name != text_field and _TIME_FIELD.search(name) \
                and isinstance(item[name], str):
            item[name] = said_at
    return item


def _truncate(text: str, max_tokens: int, tokens: int | None = None) -> tuple[str, str]:
    """`text` cut to `max_tokens` at a word boundary, and the finish reason: the longest
    prefix of its words (each with the blanks after it) within `max_tokens`, right-stripped.
    `tokens`: the count of `text`, when known.

    A prefix's token count grows with its words, so the cut is searched for rather than
    found by dropping one word at a time (one count of the text per word dropped: quadratic
    in the words of a long answer). The search starts from the words that end within the
    text's first `max_tokens` tokens, which is the cut or next to it: typically two counts
    of a prefix, and never more than a binary search's O(log n) and a few."""
    if (count_tokens(text) if tokens is None else tokens) <= max_tokens:
        return text, "stop"
    words = re.findall(r"\S+\s*", text)

    def fits(n: int) -> bool:
        return count_tokens("".join(words[:n])) <= max_tokens

    fits_n, over = 0, len(words) + 1  # the prefix of `fits_n` words fits, of `over` does not
    guess = min(_words_in_tokens(text, words, max_tokens), len(words))
    step = 1
    if guess == 0 or fits(guess):  # gallop up from the guess
        fits_n = guess
        while fits_n + step < over:
            if not fits(fits_n + step):
                over = fits_n + step
                break
            fits_n, step = fits_n + step, step * 2
    else:  # gallop down
        over = guess
        while over - step > fits_n:
            if fits(over - step):
                fits_n = over - step
                break
            over, step = over - step, step * 2
    while over - fits_n > 1:  # then halve what is left
        middle = (fits_n + over) // 2
        if fits(middle):
            fits_n = middle
        else:
            over = middle
    return "".join(words[:fits_n]).rstrip(), "length"


def _words_in_tokens(text: str, words: list[str], max_tokens: int) -> int:
    """How many of `words` (the words of `text`, with their blanks) end within its first
    `max_tokens` tokens: one encoding of the text, where a count of each prefix tried is
    one encoding each."""
    if max_tokens <= 0:
        return 0
    enc = encoding()
    pieces = enc.decode_tokens_bytes(enc.encode_ordinary(text)[:max_tokens])
    limit = sum(len(p) for p in pieces)  # bytes of text those tokens cover
    end = len(text[:len(text) - len(text.lstrip())].encode())  # blanks before the words
    for n, word in enumerate(words):
        end += len(word.encode())
        if end > limit:
            return n
    return len(words)


# -- the provider -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Answer:
    """A free-text answer before it is cut to a request's max_tokens, with its counts."""

    text: str
    tokens: int
    prompt_tokens: int


ANSWERS_KEPT = 16  # recent free-text answers a re-asked request reuses
_AnswerKey = tuple[tuple[tuple[str, str], ...], int | None]  # (role, content)s, summary words


class LocalProvider:
    """The offline provider described in the module docstring."""

    def __init__(self) -> None:
        # A caller whose answer was cut asks again with more room: the worker's summaries do
        # (53 of 66 in an import of 1,000 ingest-bench messages, whose lines run 2.5 tokens
        # a word). The same request has the same answer, so it is cut again from what was
        # kept rather than composed and counted anew. Keyed by the chat and the word budget
        # of a summary (which may follow max_tokens); the least recent goes first.
        self._answers: OrderedDict[_AnswerKey, _Answer] = OrderedDict()

    def _answer(self, chat: list[Message], prompt: Prompt, max_tokens: int) -> _Answer:
        words = _summary_words(prompt, max_tokens)
        key = (tuple((m.role, m.content) for m in chat), words)
        answer = self._answers.get(key)
        if answer is None:
            text = _text_within(prompt, words)
            answer = _Answer(text, count_tokens(text), count_tokens(prompt.text))
            self._answers[key] = answer
            if len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(key)
        return answer

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        """`timeout` is accepted and unused: nothing to wait on."""
        chat = as_messages(messages)
        prompt = read_prompt(chat)
        calls = _lookups(prompt, tools) if response_schema is None else []
        if calls:
            spoken = json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls])
            return Completion("", calls, Usage(count_tokens(prompt.text), count_tokens(spoken)),
                              "tool_calls")
        if response_schema is not None:
            text = json.dumps(_value(prompt, response_schema, max_tokens))
            finish = "stop"
        else:
            answer = self._answer(chat, prompt, max_tokens)
            text, finish = _truncate(answer.text, max_tokens, answer.tokens)
            written = answer.tokens if finish == "stop" else count_tokens(text)
            return Completion(text, [], Usage(answer.prompt_tokens, written), finish)
        return Completion(text, [], Usage(count_tokens(prompt.text), count_tokens(text)), finish)

    async def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
                     tools: Sequence[ToolSpec] | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109
                    ) -> AsyncGenerator[StreamEvent, None]:
        """The `complete` answer, word by word, as a model would stream it; the last event
        carries the usage and the tool calls."""
        done = await self.complete(messages, max_tokens=max_tokens, tools=tools)
        for piece in re.findall(r"\S+\s*", done.text):
            yield StreamEvent(text=piece)
            await asyncio.sleep(0)  # let a cancelled consumer stop us between words
        yield StreamEvent(usage=done.usage, finish_reason=done.finish_reason,
                          tool_calls=done.tool_calls)

    async def structured(self, messages: Sequence[MessageLike], schema: dict[str, Any], *,
                         max_tokens: int,
                         timeout: float | None = None,  # noqa: ASYNC109
                        ) -> dict[str, Any]:
        value = _value(read_prompt(as_messages(messages)), schema, max_tokens)
        try:
            errors = validate(value, schema)
        except ValueError as exc:  # a $ref the validator cannot follow
            errors = [str(exc)]
        if errors or not isinstance(value, dict):
            # e.g. minItems more than the facts found, or a pattern the answer misses
            raise StructuredOutputError("the local provider cannot satisfy this schema: "
                                        + "; ".join(errors[:5]), json.dumps(value))
        return value

    async def aclose(self) -> None:
        """Nothing to release."""
