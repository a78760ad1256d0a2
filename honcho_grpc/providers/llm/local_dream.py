"""Dreams (consolidation) by the offline `local` provider.

A dream request is recognised by its response schema (arrays named `deductive`, `inductive`,
`contradictions` and `superseded`); the conclusions are the numbered lines of the prompt,
"[n] (level, date) content", oldest first. Among the explicit ones:
- a newer conclusion with the same lead ("ana lives in ...") supersedes the older ones;
- a negated twin ("ana does not eat meat" beside "ana does eat meat") is a contradiction;
- three or more that start with the subject and the same verb make a pattern (inductive).
It cannot deduce, resolve pronouns or read non-English text; `deductive` stays empty.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

KEYS = ("deductive", "inductive", "contradictions", "superseded")
_LISTED = re.compile(r"^\s*\[(?P<n>\d+)\]\s*(?:\((?P<level>[a-z]+)[^)]*\)\s*)?(?P<content>\S.*)$")
_NEGATION = re.compile(r"\b(not|never|no longer|don't|doesn't|didn't)\b\s*", re.IGNORECASE)
# Verbs that report rather than describe: no pattern in "ana says ..." three times.
_NOT_PATTERNS = frozenset({"is", "has", "was", "says", "said"})
MAX_PREMISES = 5


@dataclass(frozen=True)
class Listed:
    number: int
    level: str
    content: str


def is_dream_request(schema: dict[str, Any]) -> bool:
    properties = schema.get("properties")
    return isinstance(properties, dict) and set(KEYS) <= properties.keys()


def listed(instructions: str) -> list[Listed]:
    """The numbered conclusions of the prompt, in their order."""
    found = (_LISTED.match(line) for line in instructions.splitlines())
    return [Listed(int(m["n"]), m["level"] or "explicit", m["content"].strip())
            for m in found if m]


def dream(subject: str | None, shown: list[Listed]) -> dict[str, list[dict[str, Any]]]:
    """The consolidation of `shown` in the schema's shape (citations by number)."""
    explicit = [c for c in shown if c.level == "explicit"]
    plan: dict[str, list[dict[str, Any]]] = {key: [] for key in KEYS}
    plan["superseded"] = _superseded(explicit)
    plan["contradictions"] = _contradictions(explicit)
    plan["inductive"] = _patterns(subject, explicit) if subject else []
    return plan


def _lead(content: str, words: int = 3) -> str:
    return " ".join(content.lower().split()[:words])


def _superseded(explicit: list[Listed]) -> list[dict[str, Any]]:
    by_lead: dict[str, list[Listed]] = defaultdict(list)
    for c in explicit:
        by_lead[_lead(c.content)].append(c)
    pairs = []
    for group in by_lead.values():
        # Same lead, different ending: the newest statement is the current one.
        newest = group[-1]
        pairs += [{"old": old.number, "new": newest.number} for old in group[:-1]
                  if old.content.lower() != newest.content.lower()]
    return pairs


def _contradictions(explicit: list[Listed]) -> list[dict[str, Any]]:
    positive = {_NEGATION.sub("", c.content.lower()): c for c in explicit
                if not _NEGATION.search(c.content)}
    found = []
    for c in explicit:
        twin = positive.get(_NEGATION.sub("", c.content.lower())) \
            if _NEGATION.search(c.content) else None
        if twin is not None:
            found.append({"content": f"Conflicting statements: \"{twin.content}\" and "
                                     f"\"{c.content}\"", "premises": [twin.number, c.number]})
    return found


def _patterns(subject: str, explicit: list[Listed]) -> list[dict[str, Any]]:
    by_verb: dict[str, list[Listed]] = defaultdict(list)
    for c in explicit:
        words = c.content.split()
        if len(words) >= 3 and words[0] == subject:
            by_verb[words[1].lower()].append(c)
    found = []
    for verb, group in by_verb.items():
        if len(group) >= 3 and verb not in _NOT_PATTERNS:
            cited = group[:MAX_PREMISES]
            objects = "; ".join(" ".join(c.content.split()[2:]) for c in cited)
            found.append({"content": f"{subject} repeatedly {verb}: {objects}",
                          "premises": [c.number for c in cited]})
    return found
