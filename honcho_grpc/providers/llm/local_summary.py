"""Extractive summaries of the offline `local` provider.

Sentences are scored by how rare and specific their words are (inverse frequency, plus
numbers and capitalised names); the best are taken greedily, skipping ones mostly covered
already, until the word budget is spent, then printed in their original order. Nothing is
reworded; a transcript line's sentences keep their speaker.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

from honcho_grpc.providers.llm.local_text import (
    FILLER,
    informative,
    parse_transcript_line,
    sentences,
    terms,
)

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def _summary_units(text: str | Iterable[str]) -> list[tuple[str, str]]:
    """(speaker prefix, sentence) pairs to choose from."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    units: list[tuple[str, str]] = []
    for line in lines:
        parsed = parse_transcript_line(line)
        prefix, body = (f"{parsed[0]}: ", parsed[1]) if parsed else ("", line)
        units.extend((prefix, s) for s in sentences(body))
    return list(dict.fromkeys(units))


def _specificity(sentence: str) -> int:
    """Numbers and capitalised words after the first ("I" aside): dates, names, places."""
    words = _WORD.findall(sentence)
    return sum(1 for w in words[1:] if w[0].isdigit() or (w[0].isupper() and w != "I"))


def summarize(text: str | Iterable[str], max_words: int) -> str:
    """The most informative sentences of `text` (a string, or lines such as a transcript)
    within `max_words`, in their original order; '' when there is nothing to summarise."""
    units = _summary_units(text)
    printed = [prefix + sentence for prefix, sentence in units]
    # The speaker is no information, and neither is a reaction ("cool", "sure").
    unit_terms = [terms(sentence) - FILLER for _, sentence in units]
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
                and informative(units[i][1]):
            chosen.append(i)
            covered |= unit_terms[i]
            budget -= cost
    if not chosen and units:
        return " ".join(printed[0].split()[:max_words])  # one long sentence: its start
    return " ".join(printed[i] for i in sorted(chosen))
