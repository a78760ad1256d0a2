"""Offline stand-ins for the model, used by the worker when no language model serves a task.

Deterministic and deliberately simple, so the pipeline runs end to end on any machine:
- facts: first-person sentences of the target, rewritten in the third person
  ("I moved to Lyon" -> "ana moved to Lyon");
- summaries: the previous summary's sentences plus the most informative new lines, cut to the
  word budget (extractive, no paraphrase);
- peer cards: facts sorted under a prefix by keywords;
- dreams: a newer fact with the same lead ("ana lives in ...") supersedes the older one, a
  negated twin is a contradiction, three or more facts with the same verb make a pattern.
It understands no meaning: it cannot deduce, resolve pronouns or read non-English text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from honcho_grpc.worker.reasoning import Conclusion, DreamPlan

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LINE = re.compile(r"^(?:\S+ \S+ )?(?P<speaker>[^:]+): (?P<text>.*)$", re.DOTALL)
_MODALS = {"can", "will", "would", "should", "could", "might", "must", "may", "shall"}
_IRREGULAR = {"am": "is", "have": "has", "do": "does", "was": "was", "go": "goes"}
_CONTRACTIONS = [
    (r"\bI'm\b", "I am"), (r"\bI've\b", "I have"), (r"\bI'll\b", "I will"),
    (r"\bI'd\b", "I would"), (r"\bI don't\b", "I do not"), (r"\bI can't\b", "I cannot"),
]
_NEGATION = re.compile(r"\b(not|never|no longer|don't|doesn't|didn't)\b\s*", re.IGNORECASE)
MIN_WORDS = 3
MAX_FACTS_PER_LINE = 5


def split_line(line: str) -> tuple[str, str]:
    """('speaker', 'text') from a transcript line 'YYYY-MM-DD HH:MM:SS speaker: text'."""
    match = _LINE.match(line)
    return (match["speaker"].strip(), match["text"].strip()) if match else ("", line)


def _third_person_verb(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _MODALS or low.endswith("ed") or not low.isalpha():
        return verb
    if low.endswith(("s", "sh", "ch", "x", "o", "z")):
        return verb + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _rewrite(sentence: str, name: str) -> str | None:
    """A first-person sentence in the third person, or None if it is not one."""
    text = sentence.strip().rstrip(".!")
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    if text.endswith("?") or len(text.split()) < MIN_WORDS:
        return None
    words = text.split()
    if words[0] == "I" and len(words) > 1:
        words = [name, _third_person_verb(words[1]), *words[2:]]
    elif words[0].lower() == "my":
        words = [f"{name}'s", *words[1:]]
    else:
        return None
    out = " ".join(words)
    out = re.sub(r"\bmy\b", f"{name}'s", out, flags=re.IGNORECASE)
    out = re.sub(r"\b(me|myself)\b", name, out)
    out = re.sub(r"\bI\b", name, out)
    out = re.sub(r"\bam\b", "is", out)
    return out


def facts(observed: str, lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        speaker, text = split_line(line)
        if speaker != observed:
            continue
        found = [f for s in _SENTENCE.split(text) if (f := _rewrite(s, observed))]
        out.extend(f for f in found[:MAX_FACTS_PER_LINE] if f not in out)
    return out


def summary(previous: str, lines: list[str], max_words: int) -> str:
    """Previous summary first (it covers older messages), then the longest new lines in
    chronological order, within the word budget."""
    picked: list[tuple[int, str]] = []
    budget = max_words - len(previous.split())
    ranked = sorted(enumerate(lines), key=lambda p: -len(split_line(p[1])[1].split()))
    for index, line in ranked:
        speaker, text = split_line(line)
        entry = f"{speaker}: {text}" if speaker else text
        cost = len(entry.split())
        if cost <= budget:
            picked.append((index, entry))
            budget -= cost
    body = " ".join(e if e.endswith((".", "!", "?")) else e + "." for _, e in sorted(picked))
    return " ".join(p for p in (previous.strip(), body) if p) or "(no content)"


_CARD_RULES = [
    ("IDENTITY", re.compile(r"\b(name is|is called|years old|was born|pronouns)\b", re.I)),
    ("RELATIONSHIP", re.compile(
        r"\b(wife|husband|partner|sister|brother|mother|father|mom|dad|son|daughter|friend|"
        r"boss|colleague|married)\b", re.I)),
    ("INSTRUCTION", re.compile(r"\b(prefers|wants you|please|asks to|likes answers)\b", re.I)),
]


def card(observed: str, current: list[str], new_facts: list[str]) -> list[str]:
    """New facts go first (a full card drops its oldest entries), tagged by keyword."""
    tagged = []
    for fact in new_facts:
        prefix = next((p for p, rule in _CARD_RULES if rule.search(fact)), "ATTRIBUTE")
        tagged.append(f"{prefix}: {fact}")
    return tagged + [e for e in current if e.lower() not in {t.lower() for t in tagged}]


def _lead(content: str, words: int = 3) -> str:
    return " ".join(content.lower().split()[:words])


def dream(observed: str, conclusions: list[Conclusion]) -> DreamPlan:
    from honcho_grpc.worker.reasoning import Derived, DreamPlan

    plan = DreamPlan()
    explicit = [c for c in conclusions if c.level == "explicit"]
    by_lead: dict[str, list[Conclusion]] = defaultdict(list)
    for c in explicit:
        by_lead[_lead(c.content)].append(c)
    for group in by_lead.values():
        # Same lead, different ending: the newest statement is the current one.
        if len(group) >= 2 and len({c.content.lower() for c in group}) > 1:
            newest = group[-1]
            for old in group[:-1]:
                if old.content.lower() != newest.content.lower():
                    plan.superseded.append((old.id, newest.id))
    _contradictions(explicit, plan, Derived)
    _patterns(observed, explicit, plan, Derived)
    return plan


def _contradictions(explicit: list[Conclusion], plan: DreamPlan, derived: type) -> None:
    positive = {_NEGATION.sub("", c.content.lower()): c for c in explicit
                if not _NEGATION.search(c.content)}
    for c in explicit:
        if _NEGATION.search(c.content):
            twin = positive.get(_NEGATION.sub("", c.content.lower()))
            if twin is not None:
                plan.derived.append(derived(
                    f"Conflicting statements: \"{twin.content}\" and \"{c.content}\"",
                    "contradiction", [twin.id, c.id]))


def _patterns(observed: str, explicit: list[Conclusion], plan: DreamPlan, derived: type) -> None:
    by_verb: dict[str, list[Conclusion]] = defaultdict(list)
    for c in explicit:
        words = c.content.split()
        if len(words) >= 3 and words[0] == observed:
            by_verb[words[1].lower()].append(c)
    for verb, group in by_verb.items():
        if len(group) >= 3 and verb not in {"is", "has", "was"}:
            objects = "; ".join(" ".join(c.content.split()[2:]) for c in group[:5])
            plan.derived.append(derived(f"{observed} repeatedly {verb}: {objects}",
                                        "inductive", [c.id for c in group[:5]]))
