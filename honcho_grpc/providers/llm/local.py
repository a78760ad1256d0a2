"""The offline `local` provider: no network, no weights, deterministic (same input, same
output). It exists so the whole pipeline runs and is tested end to end on any machine, and it
is honest about its limits: it understands no meaning, only surface patterns of English text.
It cannot paraphrase, deduce, resolve "he"/"she", or read other languages.

The three heuristics are plain functions the worker and dialectic may call directly:

- `extract_facts` / `facts_from_transcript` (fact extraction): sentences in which the speaker
  talks about themselves ("I am/I'm/I like/I work ...", "my X is ...") are rewritten in the
  third person about the speaker ("I like hiking" by alice -> "alice likes hiking"); other
  declarative sentences that carry information (an auxiliary verb, two content words, not
  addressed to "you") are attributed ("alice says the meeting moved to Friday"). Questions,
  greetings and filler ("I see", "I'm fine") are skipped.
- `summarize` (extractive summary): sentences are scored by how rare and specific their words
  are (inverse frequency, plus numbers and capitalised names); the best are taken greedily,
  skipping ones mostly covered already, until the word budget is spent, then printed in their
  original order. Nothing is reworded.
- `compose_answer` (retrieval-composed answer): the snippets sharing the most content words
  (light stemming) with the question are quoted, most relevant first; when none shares any,
  the answer is the abstention `ABSTAIN`. It never states anything the snippets do not.

As an `LLMProvider` it maps a chat onto these: the question is the text after a "Question:"
label in the last user turn (else that turn's last line), the context is every other line of
the non-system turns (list markers, bracketed dates and section headers stripped). A request
whose instructions (system turns) mention summarising gets a summary of the context. With a
JSON schema, `fill_schema` builds a conforming value: string fields get the answer (or
summary), arrays get facts from transcript lines ("[timestamp] speaker: text") in the context,
numbers 0, booleans false, enums their first value. It never returns tool calls: it cannot
decide to use a tool, so callers' tool loops end after one turn.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from collections.abc import AsyncGenerator, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from honcho_grpc.providers.llm.base import (
    Completion,
    Message,
    MessageLike,
    StreamEvent,
    StructuredOutputError,
    ToolSpec,
    Usage,
    as_messages,
)
from honcho_grpc.providers.llm.schema import resolve, validate
from honcho_grpc.providers.tokens import count_tokens

ABSTAIN = "I don't have information that answers this."

_STOP_WORDS = """
a an the and or but if then than so as of to in on at for with by from into onto about over
under after before up down out off is are was were be been being am do does did doing have
has had having will would shall should can could may might must not no nor i me my mine
myself you your yours he him his she her hers it its we us our ours they them their theirs
this that these those there here what which who whom whose when where why how all any some
each every both few more most other such only own same too very just also really still even
s t don let lets get got tell know well oh yeah yes hey hi hello thanks thank please
"""
_STOP = frozenset(_STOP_WORDS.split())
_FILLER_WORDS = """
fine good ok okay great sure cool nice agree see guess think mean understand sorry glad hope
bet wonder suppose believe feel lol haha wow right true totally
"""
_FILLER = frozenset(_FILLER_WORDS.split())
_ADVERBS_WORDS = """
really also usually often always never just still actually sometimes mostly definitely
absolutely totally currently recently now already probably even truly generally rarely seldom
finally mainly only genuinely honestly
"""
_ADVERBS = frozenset(_ADVERBS_WORDS.split())
_INVARIANT_WORDS = """
can cannot could will would shall should may might must was were had did used went got made
took saw came began bought brought felt found gave grew knew left lost met paid ran said sold
spent taught thought told won wrote became broke built caught chose drove ate fell fought flew
forgot heard held kept led meant rode sang sat slept spoke stood swam understood wore quit put
set cut let hit hurt
"""
_INVARIANT = frozenset(_INVARIANT_WORDS.split())
_IRREGULAR = {"am": "is", "are": "is", "have": "has", "do": "does", "go": "goes"}
_AUXILIARIES = frozenset({"is", "are", "was", "were", "has", "have", "had", "will", "would", "can",
                          "could", "does", "did"})
_CONTRACTIONS = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\bI'm\b", "I am"), (r"\bI've\b", "I have"), (r"\bI'll\b", "I will"),
    (r"\bI'd\b", "I would"), (r"\bcan't\b", "cannot"), (r"\bwon't\b", "will not"),
    (r"\b(do|does|did|is|are|was|were|have|has|had)n't\b", r"\1 not"))]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_TRANSCRIPT = re.compile(r"^\s*(?:\[?\d{4}-\d{2}-\d{2}[T ][\d:.]+Z?\]?\s+)?"
                         r"(?P<speaker>[^\s:\[\]]{1,64}):\s+(?P<text>\S.*)$")
_QUESTION = re.compile(r"^\s*(?:question|query|q)\s*:\s*(?P<q>\S.*)$",
                       re.IGNORECASE | re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_TAG = re.compile(r"^\[[^\]]{1,40}\]\s*")
# Only before a comma or "!": "No, I don't" loses the "No", "No cats are allowed" keeps it.
_INTERJECTION = re.compile(r"^(?:(?:oh|well|yeah|yes|no|so|cool|nice|hey|hi|hello|wow|ok|okay|"
                           r"haha|lol|great|sure|anyway)\s*[,!]\s*)+", re.IGNORECASE)
_BUDGET = re.compile(r"\b(\d{1,5})\s+words\b", re.IGNORECASE)


# -- words ------------------------------------------------------------------------------------

def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _stem(word: str) -> str:
    """Crude suffix stripping so 'hike', 'hikes', 'hiking' and 'hiked' all meet at 'hik'."""
    for suffix, repl in (("'s", ""), ("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""),
                         ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + repl
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def terms(text: str) -> set[str]:
    """Content words of `text`, lower-cased and stemmed; stop words dropped."""
    words = (w.lower().replace("\u2019", "'") for w in _WORD.findall(text))
    return {_stem(w) for w in words if w not in _STOP and (len(w) > 1 or w.isdigit())}


# -- (a) facts --------------------------------------------------------------------------------

def parse_transcript_line(line: str) -> tuple[str, str] | None:
    """('speaker', 'text') of a line like '2024-05-01 10:00:00 alice: text', else None."""
    match = _TRANSCRIPT.match(line)
    return (match["speaker"], match["text"].strip()) if match else None


def _third_person(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _INVARIANT or low.endswith("ed") or not low.isalpha():
        return verb
    if low.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _rewrite_first_person(sentence: str, name: str) -> str:
    """'I really like my job' -> 'alice really likes alice's job'."""
    def subject(match: re.Match[str]) -> str:
        adverbs = match.group(1) or ""
        return f"{name}{adverbs} {_third_person(match.group(2))}"

    adverb = "|".join(sorted(_ADVERBS))
    text = re.sub(rf"\bI((?:\s+(?:{adverb}))*)\s+([A-Za-z']+)", subject, sentence)
    # Replacements are functions so a name is never read as a regex template.
    text = re.sub(r"\b(?:my|mine)\b", lambda _: f"{name}'s", text, flags=re.IGNORECASE)
    text = re.sub(r"\bmyself\b", "themselves", text, flags=re.IGNORECASE)
    text = re.sub(r"\bme\b", lambda _: name, text)
    return re.sub(r"\bI\b", lambda _: name, text)


def _informative(sentence: str) -> bool:
    return bool(terms(sentence) - {_stem(f) for f in _FILLER})


def _normalise(sentence: str) -> str:
    text = sentence.replace("\u2019", "'").strip().rstrip(".!").strip()
    text = _INTERJECTION.sub("", text)
    text = re.sub(r"\bi\b", "I", text)  # chat often writes a lower-case "i"
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    return text


def _fact(sentence: str, speaker: str) -> str | None:
    text = _normalise(sentence)
    words = text.split()
    if text.endswith("?") or len(words) < 3 or not _informative(text):
        return None
    if re.search(r"\bI\b|\bmy\b", text, re.IGNORECASE):
        return _rewrite_first_person(text, speaker)
    lowered = {w.lower() for w in words}
    has_verb = bool(lowered & (_AUXILIARIES | _INVARIANT)) or any(w.endswith("ed") for w in lowered)
    if len(words) < 4 or lowered & {"you", "your", "yours"} or not has_verb \
            or len(terms(text)) < 2:
        return None
    first = words[0] if words[0].lower() not in _STOP else words[0].lower()
    return f"{speaker} says {' '.join([first, *words[1:]])}"


def extract_facts(speaker: str, text: str) -> list[str]:
    """Facts about `speaker` from one message of theirs, in order, without repeats."""
    found = (_fact(s, speaker) for s in sentences(text))
    return list(dict.fromkeys(f for f in found if f))


def facts_from_transcript(lines: Iterable[str],
                          about: Collection[str] | None = None) -> list[str]:
    """Facts from transcript lines ('[timestamp] speaker: text'), only for the speakers in
    `about` when given; lines that are not transcript lines are ignored."""
    facts: list[str] = []
    for line in lines:
        parsed = parse_transcript_line(line)
        if parsed and (about is None or parsed[0] in about):
            facts.extend(extract_facts(*parsed))
    return list(dict.fromkeys(facts))


# -- (b) summaries ----------------------------------------------------------------------------

def _summary_units(text: str | Iterable[str]) -> list[tuple[str, str]]:
    """(speaker prefix, sentence) pairs to choose from: a transcript line's sentences keep
    their speaker."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    units: list[tuple[str, str]] = []
    for line in lines:
        parsed = parse_transcript_line(line)
        prefix, body = (f"{parsed[0]}: ", parsed[1]) if parsed else ("", line)
        units.extend((prefix, s) for s in sentences(body))
    return list(dict.fromkeys(units))


def _specificity(sentence: str) -> int:
    """Numbers and capitalised words after the first: dates, names, places."""
    words = _WORD.findall(sentence)
    return sum(1 for w in words[1:] if w[0].isdigit() or w[0].isupper())


def summarize(text: str | Iterable[str], max_words: int) -> str:
    """The most informative sentences of `text` (a string, or lines such as a transcript)
    within `max_words`, in their original order; '' when there is nothing to summarise."""
    units = _summary_units(text)
    printed = [prefix + sentence for prefix, sentence in units]
    unit_terms = [terms(sentence) for _, sentence in units]  # the speaker is no information
    df = Counter(t for ts in unit_terms for t in ts)

    def score(i: int) -> float:
        weight = sum(math.log((1 + len(units)) / df[t]) + 1 for t in unit_terms[i])
        return (weight + _specificity(units[i][1])) / math.sqrt(len(printed[i].split()))

    chosen: list[int] = []
    covered: set[str] = set()
    budget = max_words
    for i in sorted(range(len(units)), key=lambda i: (-score(i), i)):
        cost = len(printed[i].split())
        fresh = unit_terms[i] - covered
        if cost <= budget and len(fresh) > 0.3 * len(unit_terms[i]) \
                and _informative(units[i][1]):
            chosen.append(i)
            covered |= unit_terms[i]
            budget -= cost
    if not chosen and units:
        return " ".join(printed[0].split()[:max_words])  # one long sentence: its start
    return " ".join(printed[i] for i in sorted(chosen))


# -- (c) answers ------------------------------------------------------------------------------

def rank_snippets(question: str, snippets: Sequence[str], limit: int = 3,
                  ignore: Collection[str] = ()) -> list[str]:
    """The snippets sharing content words with the question, best first. A shared word
    weighs by its rarity among the snippets (inverse frequency); a word in every one of three
    or more snippets weighs nothing (it is their topic, typically the person asked about,
    not evidence), and neither do the words in `ignore`. Snippets scoring under half the best
    are left out; ties keep the given order (callers make it their retrieval rank)."""
    asked = terms(question) - terms(" ".join(ignore))
    shared = [terms(s) & asked for s in snippets]
    df = Counter(t for ts in shared for t in ts)
    n = len(snippets)

    def weight(i: int) -> float:
        return sum(0.0 if n >= 3 and df[t] == n else math.log((1 + n) / df[t])
                   for t in shared[i])

    scores = [weight(i) for i in range(n)]
    best = max(scores, default=0.0)
    ranked = sorted((i for i in range(n) if scores[i] > 0 and scores[i] >= best / 2),
                    key=lambda i: (-scores[i], i))
    return [snippets[i] for i in ranked[:limit]]


def compose_answer(question: str, snippets: Sequence[str], limit: int = 3,
                   ignore: Collection[str] = ()) -> str:
    """An answer quoting the most relevant snippets, or `ABSTAIN` when none is relevant."""
    relevant = rank_snippets(question, snippets, limit, ignore)
    if not relevant:
        return ABSTAIN
    return "Based on what I know: " + "; ".join(s.strip().rstrip(".") for s in relevant) + "."


# -- structured output ------------------------------------------------------------------------

def fill_schema(schema: dict[str, Any], answer: str, facts: Sequence[str],
                root: dict[str, Any] | None = None) -> Any:
    """A value conforming to `schema`: strings get `answer`, arrays `facts` (as strings, or
    as objects whose first string property holds the fact), numbers their minimum or 0,
    booleans false, enums and consts their first value."""
    root = root or schema
    schema = resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return fill_schema(schema[key][0], answer, facts, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: fill_schema(sub, answer, facts, root)
                for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_fact_item(resolve(schema.get("items", {}), root), f, root) for f in facts]
    return {"string": answer, "integer": int(schema.get("minimum", 0)),
            "number": schema.get("minimum", 0), "boolean": False}.get(kind)


def _fact_item(schema: dict[str, Any], fact: str, root: dict[str, Any]) -> Any:
    if schema.get("type", "string") != "object":
        return fact
    props: dict[str, Any] = schema.get("properties", {})
    text_field = next((n for n, s in props.items() if resolve(s, root).get("type") == "string"),
                      None)
    item = {n: fill_schema(s, fact, [], root) for n, s in props.items()}
    if text_field:
        item[text_field] = fact
    return item


# -- the provider -----------------------------------------------------------------------------

@dataclass
class Prompt:
    """What the heuristics read from a chat."""

    instructions: str
    question: str
    context: list[str]
    text: str  # everything, for usage accounting


def _context_line(line: str) -> str:
    line = _TAG.sub("", _LIST_MARKER.sub("", line.strip()))
    if not line or line.endswith(":") or line.startswith(("{", "[")) \
            or line in ("(none)", "(empty)"):
        return ""  # headers, placeholders and JSON (schemas) are not evidence
    return line


def read_prompt(messages: list[Message]) -> Prompt:
    instructions = "\n".join(m.content for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    last_user = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), -1)
    question, lines = "", []
    for i, turn in enumerate(turns):
        body = turn.content
        if i == last_user:
            labelled = list(_QUESTION.finditer(body))
            if labelled:
                question = labelled[-1]["q"].strip()
                body = body[:labelled[-1].start()] + body[labelled[-1].end():]
            else:
                rest, _, question = body.strip().rpartition("\n")
                body = rest
        lines += [c for c in map(_context_line, body.splitlines()) if c]
    text = "\n".join(m.content for m in messages)
    return Prompt(instructions, question.strip(), list(dict.fromkeys(lines)), text)


def _speakers(prompt: Prompt) -> set[str] | None:
    """Transcript speakers named in the instructions (the target of a fact extraction);
    None, meaning everyone, when the instructions name none of them."""
    spoken = {p[0] for line in prompt.context if (p := parse_transcript_line(line))}
    named = {s for s in spoken if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", prompt.instructions)}
    return named or None


def _budget_words(prompt: Prompt, max_tokens: int) -> int:
    stated = _BUDGET.search(prompt.instructions)
    return int(stated.group(1)) if stated else max(1, max_tokens * 3 // 4)


def _answer(prompt: Prompt, max_tokens: int) -> str:
    if re.search(r"\bsummar", prompt.instructions, re.IGNORECASE):
        return summarize(prompt.context, _budget_words(prompt, max_tokens)) or ABSTAIN
    return compose_answer(prompt.question, prompt.context)


def _truncate(text: str, max_tokens: int) -> tuple[str, str]:
    """`text` cut to `max_tokens` at a word boundary, and the finish reason."""
    if count_tokens(text) <= max_tokens:
        return text, "stop"
    words = re.findall(r"\S+\s*", text)
    while words and count_tokens("".join(words)) > max_tokens:
        words.pop()
    return "".join(words).rstrip(), "length"


class LocalProvider:
    """The offline provider described in the module docstring."""

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        """`tools` and `timeout` are accepted and unused: no tool calls, nothing to wait on."""
        prompt = read_prompt(as_messages(messages))
        if response_schema is not None:
            text, finish = json.dumps(self._fill(prompt, response_schema, max_tokens)), "stop"
        else:
            text, finish = _truncate(_answer(prompt, max_tokens), max_tokens)
        usage = Usage(count_tokens(prompt.text), count_tokens(text))
        return Completion(text, [], usage, finish)

    async def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
                     tools: Sequence[ToolSpec] | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109
                    ) -> AsyncGenerator[StreamEvent, None]:
        """The `complete` answer, word by word, as a model would stream it; `tools` are
        accepted and unused, as in `complete` (the final event never carries tool calls)."""
        done = await self.complete(messages, max_tokens=max_tokens)
        for piece in re.findall(r"\S+\s*", done.text):
            yield StreamEvent(text=piece)
            await asyncio.sleep(0)  # let a cancelled consumer stop us between words
        yield StreamEvent(usage=done.usage, finish_reason=done.finish_reason)

    async def structured(self, messages: Sequence[MessageLike], schema: dict[str, Any], *,
                         max_tokens: int,
                         timeout: float | None = None,  # noqa: ASYNC109
                        ) -> dict[str, Any]:
        value = self._fill(read_prompt(as_messages(messages)), schema, max_tokens)
        errors = validate(value, schema)
        if errors or not isinstance(value, dict):
            # e.g. minItems more than the facts found, or a pattern the answer misses
            raise StructuredOutputError("the local provider cannot satisfy this schema: "
                                        + "; ".join(errors[:5]), json.dumps(value))
        return value

    async def aclose(self) -> None:
        """Nothing to release."""

    @staticmethod
    def _fill(prompt: Prompt, schema: dict[str, Any], max_tokens: int) -> Any:
        facts = facts_from_transcript(prompt.context, _speakers(prompt))
        return fill_schema(schema, _answer(prompt, max_tokens), facts)
