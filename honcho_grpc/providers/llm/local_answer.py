"""Answers of the offline `local` provider: composed from what it was given, never more.

The snippets sharing the most content words with the question are quoted, most relevant
first; when none shares any, it abstains. Offered search tools (a function taking a `query`
string and needing nothing else), it behaves as a model told to look things up when the
context is not enough: if no snippet of its context is relevant and it has not looked yet,
it calls each such tool once with the question's content words, then answers from the
context and the results it gets back.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence

from honcho_grpc.providers.llm.base import ToolCall, ToolSpec
from honcho_grpc.providers.llm.local_card import PREFIXED
from honcho_grpc.providers.llm.local_text import parse_transcript_line, sentences, terms

ABSTAIN = "I don't have information that answers this."
MAX_QUOTED = 3
REPEAT_SHARE = 0.2  # a snippet with no more new words than this share repeats the quoted
_REPORTING = frozenset({"said"})  # how `evidence` marks a message, not what it says
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")


def rank_snippets(question: str, snippets: Sequence[str], limit: int = MAX_QUOTED,
                  ignore: Collection[str] = ()) -> list[str]:
    """The snippets sharing content words with the question, best first. A shared word
    weighs by its rarity among the snippets (inverse frequency); the words in `ignore` (the
    person asked about) weigh nothing. Snippets scoring under half the best
    are left out, and so is one that says little a better one has not said (a message and
    the conclusion drawn from it); ties keep the given order (callers make it their
    retrieval rank). A word every snippet shares still counts, a little: when all of them
    say "nurse" and the question asks about the nurse, they all answer it."""
    asked = terms(question) - terms(" ".join(ignore))
    words = [terms(s) - _REPORTING for s in snippets]
    shared = [ws & asked for ws in words]
    df = Counter(t for ts in shared for t in ts)
    n = len(snippets)

    def weight(i: int) -> float:
        return sum(math.log((1 + n) / df[t]) for t in shared[i])

    scores = [weight(i) for i in range(n)]
    best = max(scores, default=0.0)
    ranked = sorted((i for i in range(n) if scores[i] > 0 and scores[i] >= best / 2),
                    key=lambda i: (-scores[i], i))
    chosen: list[int] = []
    said: set[str] = set()
    for i in ranked:
        if len(words[i] - said) > REPEAT_SHARE * len(words[i]):
            chosen.append(i)
            said |= words[i]
    return [snippets[i] for i in chosen[:limit]]


def abstention(subject: str | None) -> str:
    return f"I don't have information about {subject} that answers this." if subject \
        else ABSTAIN


def compose_answer(question: str, snippets: Sequence[str], limit: int = MAX_QUOTED,
                   ignore: Collection[str] = (), subject: str | None = None) -> str:
    """An answer quoting the most relevant snippets, or an abstention when none is. The
    `subject` (whom the questions are about) is named in the answer and is no evidence."""
    relevant = rank_snippets(question, snippets, limit, [*ignore, *filter(None, [subject])])
    if not relevant:
        return abstention(subject)
    lead = f"Based on what is known about {subject}: " if subject else "Based on what I know: "
    return lead + "; ".join(s.strip().rstrip(".") for s in relevant) + "."


def evidence(lines: Sequence[str]) -> list[str]:
    """Context lines as quotable snippets: a card entry without its prefix, a transcript
    line as "speaker said: text", other lines sentence by sentence."""
    snippets: list[str] = []
    for line in lines:
        line = PREFIXED.sub("", line)
        said = parse_transcript_line(line)
        snippets += [f"{said[0]} said: {said[1]}"] if said else sentences(line)
    return list(dict.fromkeys(snippets))


def searches(tools: Sequence[ToolSpec]) -> list[ToolSpec]:
    """The offered tools it can call: a `query` string is all they need."""
    def fillable(spec: ToolSpec) -> bool:
        properties = spec.parameters.get("properties") or {}
        query = properties.get("query")
        return isinstance(query, dict) and query.get("type") == "string" \
            and set(spec.parameters.get("required") or ()) <= {"query"}

    return [spec for spec in tools if fillable(spec)]


def lookups(question: str, snippets: Sequence[str], tools: Sequence[ToolSpec],
            subject: str | None) -> list[ToolCall]:
    """The tool calls to make before answering: none when the snippets answer already."""
    ignore = [subject] if subject else []
    if not question or rank_snippets(question, snippets, ignore=ignore):
        return []
    skip = terms(subject or "")
    words = [w for w in _WORD.findall(question) if terms(w) - skip]
    query = " ".join(words) or question
    return [ToolCall(f"local-{i}", spec.name, {"query": query})
            for i, spec in enumerate(searches(tools), 1)]
