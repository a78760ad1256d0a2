"""Peer cards by the offline `local` provider.

A card request is recognised by its instructions naming the four entry prefixes; the
provider reads the card so far under the header naming the "card" and the new facts under
the header naming the "facts". Each new fact is filed under a prefix by keywords and goes
first (a full card then drops its oldest entries); entries the new facts repeat are not
kept twice. It understands no meaning: it does not merge or drop contradicted entries.
"""

from __future__ import annotations

import re

from honcho_grpc.providers.llm.local_text import section

PREFIXES = ("IDENTITY", "ATTRIBUTE", "RELATIONSHIP", "INSTRUCTION")
PREFIXED = re.compile(rf"^(?:{'|'.join(PREFIXES)}):\s*")

_RULES = [
    ("IDENTITY", re.compile(r"\b(name is|is called|years old|was born|pronouns)\b", re.I)),
    ("RELATIONSHIP", re.compile(
        r"\b(wife|husband|partner|sister|brother|mother|father|mom|dad|son|daughter|friend|"
        r"boss|colleague|married)\b", re.I)),
    ("INSTRUCTION", re.compile(r"\b(prefers|wants you|please|asks to|likes answers)\b", re.I)),
]


def is_card_request(instructions: str) -> bool:
    return all(f"{p}:" in instructions for p in PREFIXES)


def card(current: list[str], new_facts: list[str]) -> list[str]:
    """New facts first, tagged by keyword, then the current entries they do not repeat."""
    tagged = []
    for fact in new_facts:
        prefix = next((p for p, rule in _RULES if rule.search(fact)), "ATTRIBUTE")
        tagged.append(f"{prefix}: {fact}")
    repeated = {t.lower() for t in tagged}
    return tagged + [e for e in current if e.lower() not in repeated]


def card_from_request(instructions: str) -> list[str]:
    """The updated card for a card request."""
    current = [e for e in section(instructions, "card") if PREFIXED.match(e)]
    facts = [f for f in section(instructions, "facts") if f]
    return card(current, facts)
