"""How the offline `local` provider reads text: sentences, transcript lines, and the content
words of a sentence. Words are search's lexemes (honcho_grpc/providers/lexemes.py: the
tokenizer, stemmer and stop words of PostgreSQL's `english` configuration), so "hiking",
"hikes" and "hiked" meet at the same word here as in search.

On top of them, `terms` leaves out the small talk of chat (modal verbs, interjections,
"know", "tell"): search must still find a message saying "thanks", but a sentence made of
such words states nothing, and a question's "tell me" or "do you know" is not what it asks
about.
"""

from __future__ import annotations

import functools
import re

from honcho_grpc.providers.lexemes import STOP_WORDS, lexemes, stem

_SMALL_TALK_WORDS = """
would could shall may might must let lets get got tell know also really still even every
well oh yeah yes hey hi hello thanks thank please mine
"""
_SMALL_TALK = frozenset(stem(w) for w in _SMALL_TALK_WORDS.split())
# Words that make a sentence a reaction rather than a statement ("I see", "sounds great").
_FILLER_WORDS = """
fine good ok okay great sure cool nice agree see guess think mean understand sorry glad hope
bet wonder suppose believe feel lol haha wow right true totally pretty lovely understood
awesome amazing wonderful perfect
"""
FILLER = frozenset(stem(w) for w in _FILLER_WORDS.split())

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TRANSCRIPT = re.compile(r"^\s*(?:\[?(?P<at>\d{4}-\d{2}-\d{2}[T ][\d:.]+)Z?\]?\s+)?"
                         r"(?P<speaker>[^\s:\[\]]{1,64}):\s+(?P<text>\S.*)$")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def is_stop_word(word: str) -> bool:
    return word.lower() in STOP_WORDS


@functools.lru_cache(maxsize=16384)
def terms(text: str) -> frozenset[str]:
    """The content words of `text` as lexemes: no stop words, no small talk, no single
    letters (what is left of "I'm" or "e.g."). Cached: a dialectic's context lines come
    back in request after request, and each is read more than once."""
    return frozenset(lx for lx in lexemes(text.replace("\u2019", "'"))
                     if (len(lx) > 1 or lx.isdigit()) and lx not in _SMALL_TALK)


def informative(sentence: str) -> bool:
    """Whether `sentence` has a content word that is not a reaction."""
    return bool(terms(sentence) - FILLER)


def transcript_time(line: str) -> str:
    """The timestamp a transcript line starts with, as written ("" if none)."""
    match = _TRANSCRIPT.match(line)
    return (match["at"] or "") if match else ""


def parse_transcript_line(line: str) -> tuple[str, str] | None:
    """('speaker', 'text') of a line like '2024-05-01 10:00:00 alice: text', else None."""
    match = _TRANSCRIPT.match(line)
    return (match["speaker"], match["text"].strip()) if match else None


_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


def section(text: str, word: str) -> list[str]:
    """The lines under the first header (a line ending in ':') that contains `word`, up to
    the next blank line or header, list markers stripped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip().endswith(":")
                  and word.lower() in line.lower()), None)
    if start is None:
        return []
    found: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip() or line.rstrip().endswith(":"):
            break
        found.append(_LIST_MARKER.sub("", line.strip()))
    return found
