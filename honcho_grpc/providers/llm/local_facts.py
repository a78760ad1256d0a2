"""Fact extraction of the offline `local` provider.

Sentences in which the speaker talks about themselves ("I am/I'm/I like/I work ...", "my X
is ...") are rewritten in the third person about the speaker ("I like hiking" by alice ->
"alice likes hiking"); other declarative sentences that carry information (an auxiliary verb,
two content words, not addressed to "you") are attributed ("alice says the meeting moved to
Friday"). Questions, greetings and filler ("I see", "I'm fine") are skipped. It cannot
paraphrase, resolve "he"/"she", or read other languages.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from honcho_grpc.providers.llm.local_text import (
    informative,
    is_stop_word,
    parse_transcript_line,
    sentences,
    terms,
    transcript_time,
)


class Sourced(str):
    """A fact that remembers the timestamp of the line it came from (`said_at`), so a
    schema asking when a fact was said can be answered."""

    said_at: str = ""
    speaker: str = ""  # whose line it came from: whom the fact is about

    @classmethod
    def of(cls, text: str, said_at: str, speaker: str = "") -> Sourced:
        fact = cls(text)
        fact.said_at = said_at
        fact.speaker = speaker
        return fact

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
# Only before a comma or "!": "No, I don't" loses the "No", "No cats are allowed" keeps it.
_INTERJECTION = re.compile(r"^(?:(?:oh|well|yeah|yes|no|so|cool|nice|hey|hi|hello|wow|ok|okay|"
                           r"haha|lol|great|sure|anyway)\s*[,!]\s*)+", re.IGNORECASE)


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
    if text.endswith("?") or len(words) < 3 or not informative(text):
        return None
    if re.search(r"\bI\b|\bmy\b", text, re.IGNORECASE):
        return _rewrite_first_person(text, speaker)
    lowered = {w.lower() for w in words}
    has_verb = bool(lowered & (_AUXILIARIES | _INVARIANT)) or any(w.endswith("ed") for w in lowered)
    if len(words) < 4 or lowered & {"you", "your", "yours"} or not has_verb \
            or len(terms(text)) < 2:
        return None
    first = words[0].lower() if is_stop_word(words[0]) else words[0]
    return f"{speaker} says {' '.join([first, *words[1:]])}"


def extract_facts(speaker: str, text: str) -> list[str]:
    """Facts about `speaker` from one message of theirs, in order, without repeats."""
    found = (_fact(s, speaker) for s in sentences(text))
    return list(dict.fromkeys(f for f in found if f))


def facts_from_transcript(lines: Iterable[str],
                          about: Collection[str] | None = None) -> list[str]:
    """Facts from transcript lines ('[timestamp] speaker: text'), only for the speakers in
    `about` when given, each `Sourced` by its line's timestamp (the first line saying it);
    lines that are not transcript lines are ignored."""
    facts: list[str] = []
    for line in lines:
        parsed = parse_transcript_line(line)
        if parsed and (about is None or parsed[0] in about):
            at = transcript_time(line)
            facts.extend(Sourced.of(f, at, parsed[0]) for f in extract_facts(*parsed))
    return list(dict.fromkeys(facts))
