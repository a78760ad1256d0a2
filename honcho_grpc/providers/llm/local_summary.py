"""Extractive summaries of the offline `local` provider.

Sentences are scored by how rare and specific their words are (inverse frequency, plus
numbers and capitalised names); the best are taken greedily, skipping ones mostly covered
already, until the word budget is spent, then printed in their original order. Nothing is
reworded; a transcript line's sentences keep their speaker.

A model writes a summary of N words in its own words, a few tokens each; this one copies the
input's, and a word of the input can be any length: a line of Chinese or Japanese (no
spaces), a URL, a run of one character. So the summary is also held to TOKENS_PER_WORD
tokens a word of its budget, which ordinary text (1.3 to 2.5 a word) does not reach, so its
summaries are unchanged; the room the worker gives a summary of N words (`worker/reasoning.py`:
at least 2N tokens, then twice that) always holds it.
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
from honcho_grpc.providers.tokens import count_tokens, encoding

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
TOKENS_PER_WORD = 4


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
    within `max_words` and `TOKENS_PER_WORD * max_words` tokens, in their original order;
    '' when there is nothing to summarise."""
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
    budget, room = max_words, TOKENS_PER_WORD * max_words
    for i in sorted(range(len(units)), key=lambda i: (-score(i), i)):
        cost = len(printed[i].split())
        fresh = unit_terms[i] - covered
        if cost <= budget and len(fresh) > 0.3 * len(unit_terms[i]) \
                and informative(units[i][1]):
            tokens = count_tokens(printed[i]) + 1  # and the blank joining it
            if tokens > room:
                continue
            chosen.append(i)
            covered |= unit_terms[i]
            budget -= cost
            room -= tokens
    if not chosen and units:  # one long sentence, or words too long: its start
        return _start(" ".join(printed[0].split()[:max_words]), TOKENS_PER_WORD * max_words)
    summary = " ".join(printed[i] for i in sorted(chosen))
    while len(chosen) > 1 and count_tokens(summary) > TOKENS_PER_WORD * max_words:
        chosen.pop()  # the joins counted one token each and took more: the least informative
        summary = " ".join(printed[i] for i in sorted(chosen))
    return summary


def _start(text: str, max_tokens: int) -> str:
    """The first `max_tokens` tokens of `text` (whole characters; a word may be cut)."""
    enc = encoding()
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    start = b"".join(enc.decode_tokens_bytes(tokens[:max_tokens]))
    return start.decode("utf-8", errors="ignore").rstrip()
