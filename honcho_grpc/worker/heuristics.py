"""Offline stand-ins for the model in the two worker tasks the `local` provider has no
heuristic for (its fact extraction and summaries are used as they are; see
honcho_grpc/providers/llm/local.py). Deterministic and deliberately simple:
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

_NEGATION = re.compile(r"\b(not|never|no longer|don't|doesn't|didn't)\b\s*", re.IGNORECASE)
# Verbs that report rather than describe: no pattern in "ana says ..." three times.
_NOT_PATTERNS = frozenset({"is", "has", "was", "says", "said"})


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
        if len(group) >= 3 and verb not in _NOT_PATTERNS:
            objects = "; ".join(" ".join(c.content.split()[2:]) for c in group[:5])
            plan.derived.append(derived(f"{observed} repeatedly {verb}: {objects}",
                                        "inductive", [c.id for c in group[:5]]))
