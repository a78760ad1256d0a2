"""The working representation: what an observer holds about an observed peer, picked from
semantic matches, the most reinforced and the most recent conclusions, rendered as markdown
by level."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from honcho_grpc.domain.aio import all_of
from honcho_grpc.model import Conclusion
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import memory

DEFAULT_MAX = 25
SECTIONS = (("explicit", "Explicit"), ("deductive", "Deductive"), ("inductive", "Inductive"),
            ("contradiction", "Contradictions"))


@dataclass(frozen=True, slots=True)
class RepresentationQuery:
    workspace_id: str
    observer_id: str
    observed_id: str
    session_id: str | None = None
    search_query: str = ""
    search_top_k: int = 0
    search_max_distance: float = 0.0
    include_most_frequent: bool = False
    max_conclusions: int = DEFAULT_MAX
    # A scoped read (domain/scopes.py): explicit conclusions drawn in these sessions only.
    sessions: frozenset[str] | None = None

    def within(self) -> str | list[str] | None:
        """What conclusion reads are confined to: the boundary, else the one session."""
        return sorted(self.sessions) if self.sessions is not None else self.session_id


async def select_conclusions(pool: asyncpg.Pool, embedder: Embedder,
                             q: RepresentationQuery) -> list[Conclusion]:
    """Semantic matches first (a third of the budget, or search_top_k), then the most
    reinforced (a third with a query, half without), then the most recent; no duplicates."""
    total = q.max_conclusions or DEFAULT_MAX
    picked: dict[str, Conclusion] = {}

    def take(found: list[Conclusion], limit: int) -> None:
        for c in found:
            if len(picked) >= total or limit <= 0:
                return
            if c.conclusion_id not in picked:
                picked[c.conclusion_id] = c
                limit -= 1

    pair = (q.workspace_id, q.observer_id, q.observed_id, q.within())
    semantic_k = q.search_top_k or max(1, total // 3)
    frequent_k = max(1, total // 3 if q.search_query else total // 2)

    async def semantic() -> list[Conclusion]:
        if not q.search_query:
            return []
        vector = await embedder.embed_one(q.search_query)
        return await memory.conclusions_semantic(pool, *pair, vector, semantic_k,
                                                 q.search_max_distance)

    async def frequent() -> list[Conclusion]:
        if not q.include_most_frequent:
            return []
        return await memory.conclusions_reinforced(pool, *pair, frequent_k)

    # Three independent reads at once; merged in priority order below.
    by_meaning, by_frequency, by_time = await all_of(
        semantic(), frequent(), memory.conclusions_recent(pool, *pair, total))
    take(by_meaning, semantic_k)
    take(by_frequency, frequent_k)
    take(by_time, total - len(picked))
    return list(picked.values())


def render(conclusions: list[Conclusion]) -> str:
    """Markdown: one section per level, each line prefixed with its time; derived ones list
    their premises."""
    parts: list[str] = []
    for level, title in SECTIONS:
        lines = [
            f"- [{c.created_at:%Y-%m-%d %H:%M:%S}] {c.content}"
            + (f" (premises: {', '.join(c.premise_ids)})" if c.premise_ids else "")
            for c in sorted((c for c in conclusions if c.level == level),
                            key=lambda c: c.created_at)
        ]
        if lines:
            parts.append(f"## {title} conclusions\n" + "\n".join(lines))
    return "\n\n".join(parts)
