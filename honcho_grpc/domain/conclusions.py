"""Conclusions: what an observer peer holds true about an observed one (itself included).
Callers state explicit ones (create); the worker derives the rest, written without
duplicates. Deleting one removes those built on it.

A new conclusion that repeats a live one of the same pair and level -- exactly (after
trimming, lower-casing and collapsing whitespace) or nearly (cosine distance <= 0.05) -- is
not stored again: the existing one's `times_derived` goes up instead, which is how repetition
reinforces what is known -- when it brings evidence of its own: a dream that re-derives a
pattern from the premises the stored one already cites has learnt nothing new, and
counts nothing. Delivery is at least once, so a batch may run twice: conclusions
remember the queue rows they came from, and a replay writes nothing (`already_derived`).

Everything here runs inside the caller's transaction (the worker's fenced completion).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from honcho_grpc.domain import peers, sessions
from honcho_grpc.domain.events import CONCLUSION_INVALIDATED, CONCLUSIONS_DERIVED
from honcho_grpc.domain.idempotent import R, Retry, run_write
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import not_found
from honcho_grpc.ids import new_id
from honcho_grpc.model import (
    Conclusion,
    ConclusionDraft,
    ConclusionLevel,
    Json,
    NewConclusion,
    Page,
)
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import Conn, events
from honcho_grpc.store import conclusions as store

SEMANTIC_DUPLICATE_DISTANCE = 0.05


@dataclass(frozen=True)
class Pair:
    """Who concludes (observer) about whom (observed), in a workspace."""

    workspace_id: str
    observer_id: str
    observed_id: str


@dataclass
class Candidate:
    """A derived conclusion before it is written."""

    content: str
    level: ConclusionLevel
    embedding: np.ndarray | None
    session_id: str | None = None
    premise_ids: list[str] = field(default_factory=list)
    source_message_ids: list[str] = field(default_factory=list)
    # When it was said (its message's time; the latest premise's for a dream's conclusion).
    created_at: datetime | None = None


@dataclass
class Written:
    created: list[str] = field(default_factory=list)
    reinforced: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _close(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return False
    return float(1.0 - np.dot(a, b)) <= SEMANTIC_DUPLICATE_DISTANCE


def _cites(item: Candidate) -> set[str]:
    """The evidence a candidate rests on (an empty set is never "already known")."""
    return set(item.premise_ids) | set(item.source_message_ids) or {"-"}


def _unique_in_batch(items: list[Candidate]
                     ) -> tuple[list[Candidate], list[tuple[Candidate, int]]]:
    """Drop repeats inside the batch itself; returns survivors and, per dropped item, the
    item and the index of the survivor it repeats."""
    kept: list[Candidate] = []
    repeats: list[tuple[Candidate, int]] = []
    for item in items:
        match = next((i for i, k in enumerate(kept) if k.level == item.level and (
            _norm(k.content) == _norm(item.content) or _close(k.embedding, item.embedding))),
            None)
        if match is None:
            kept.append(item)
        else:
            repeats.append((item, match))
    return kept, repeats


async def _existing(conn: asyncpg.Connection, pair: Pair,
                    items: list[Candidate]) -> list[str | None]:
    """Per item, the live conclusion it repeats (exactly, else nearly), if any."""
    found: list[str | None] = [None] * len(items)
    for level in sorted({i.level for i in items}):
        idx = [n for n, i in enumerate(items) if i.level == level]
        exact = await store.exact_duplicates(conn, pair.workspace_id, pair.observer_id,
                                             pair.observed_id, level,
                                             [items[n].content for n in idx])
        for k, cid in exact.items():
            found[idx[k]] = cid
        rest = [n for n in idx if found[n] is None]
        vectors = [v for n in rest if (v := items[n].embedding) is not None]
        rest = [n for n in rest if items[n].embedding is not None]
        if rest:
            near = await store.near_duplicates(conn, pair.workspace_id, pair.observer_id,
                                               pair.observed_id, level, vectors,
                                               SEMANTIC_DUPLICATE_DISTANCE)
            for k, cid in near.items():
                found[rest[k]] = cid
    return found


async def write_derived(conn: asyncpg.Connection, pair: Pair, items: list[Candidate], *,
                        model: str | None, metadata: dict[str, Any]) -> Written:
    """Store the new items and reinforce the ones that repeat what is known."""
    kept, repeats = _unique_in_batch(items)
    bumps: Counter[str] = Counter()
    fresh: list[NewConclusion] = []
    targets: list[str] = []  # per kept item: the conclusion it became or repeats
    found = await _existing(conn, pair, kept)
    cited = await store.evidence(conn, pair.workspace_id, [e for e in found if e])
    for item, existing in zip(kept, found, strict=True):
        if existing:
            if not _cites(item) <= cited.get(existing, set()):
                bumps[existing] += 1
            targets.append(existing)
            continue
        fresh.append(NewConclusion(
            conclusion_id=new_id(), observer_id=pair.observer_id,
            observed_id=pair.observed_id, session_id=item.session_id, content=item.content,
            embedding=item.embedding, model=model if item.embedding is not None else None,
            level=item.level, premise_ids=item.premise_ids,
            source_message_ids=item.source_message_ids, internal_metadata=metadata,
            created_at=item.created_at))
        targets.append(fresh[-1].conclusion_id)
    for item, index in repeats:  # a repeat inside the batch reinforces its twin's target
        if not _cites(item) <= _cites(kept[index]):
            bumps[targets[index]] += 1
    await store.add_conclusions(conn, pair.workspace_id, fresh)
    await store.reinforce(conn, pair.workspace_id, dict(bumps))
    return Written(created=[c.conclusion_id for c in fresh], reinforced=list(bumps))


async def already_derived(conn: asyncpg.Connection, pair: Pair, queue_ids: list[int]) -> bool:
    """Whether these queue rows already wrote conclusions for the pair (a redelivery)."""
    return await store.derived_from_queue_rows(conn, pair.workspace_id, pair.observer_id,
                                               pair.observed_id, [str(i) for i in queue_ids])


async def announce_derived(conn: asyncpg.Connection, pair: Pair, written: Written, *,
                           session_id: str | None = None, **data: Any) -> None:
    """`conclusions.derived` for watchers of the observed peer and the observer."""
    await events.emit(conn, CONCLUSIONS_DERIVED, pair.workspace_id, session_id=session_id,
                      peer_id=pair.observed_id, peers=[pair.observer_id],
                      data={"observer_id": pair.observer_id, "observed_id": pair.observed_id,
                            **data, "created": len(written.created),
                            "reinforced": len(written.reinforced),
                            "conclusion_ids": written.created})


async def supersede(conn: asyncpg.Connection, pair: Pair, old_id: str, new_id_: str) -> None:
    """Invalidate a conclusion that a newer one replaces (kept, marked, never deleted)."""
    if await store.supersede(conn, pair.workspace_id, old_id, new_id_):
        await events.emit(conn, CONCLUSION_INVALIDATED, pair.workspace_id,
                          peer_id=pair.observed_id, peers=[pair.observer_id],
                          data={"conclusion_id": old_id, "superseded_by": new_id_,
                                "observer_id": pair.observer_id})


MAX_BATCH = 100        # conclusions per CreateConclusions
MAX_CHARS = 65_535     # characters per conclusion
DEFAULT_TOP_K = 10


async def create(pool: asyncpg.Pool, embedder: Embedder, workspace_id: str,
                 drafts: Sequence[ConclusionDraft], retry: Retry[R],
                 respond: Callable[[list[Conclusion]], R]) -> R:
    """Store explicit conclusions with their embeddings; their peers and sessions must
    exist. (The vectors are computed before the transaction, so that it stays short.)"""
    vectors = await embedder.embed([d.content for d in drafts])
    items = [NewConclusion(conclusion_id=new_id(), observer_id=d.observer_id,
                           observed_id=d.observed_id, session_id=d.session_id,
                           content=d.content, embedding=vector, model=embedder.model_id)
             for d, vector in zip(drafts, vectors, strict=True)]

    async def write(conn: Conn) -> R:
        await _require_parents(conn, workspace_id, drafts)
        return respond(await store.insert_conclusions(conn, workspace_id, items))

    return await run_write(pool, workspace_id, retry, write)


async def _require_parents(conn: Conn, workspace_id: str,
                           drafts: Sequence[ConclusionDraft]) -> None:
    named = {d.observer_id for d in drafts} | {d.observed_id for d in drafts}
    await peers.require(conn, workspace_id, *sorted(named))
    for session_id in sorted({d.session_id for d in drafts if d.session_id}):
        await sessions.require(conn, workspace_id, session_id)


async def list_conclusions(pool: asyncpg.Pool, workspace_id: str, filters: Json | None,
                           include_invalid: bool, reverse: bool, page_size: int,
                           token: str) -> Page[Conclusion]:
    """Newest first unless `reverse`; superseded ones only with `include_invalid`."""
    return await store.list_conclusions(pool, workspace_id, filters, include_invalid, reverse,
                                        page_size, token)


async def query(pool: asyncpg.Pool, embedder: Embedder, workspace_id: str, observer_id: str,
                observed_id: str, text: str, top_k: int, max_distance: float,
                filters: Json | None) -> list[Conclusion]:
    """The pair's valid conclusions nearest in meaning to `text` (top_k 0: the default;
    max_distance 0: no bound)."""
    vector = await embedder.embed_one(text)
    return await store.query_conclusions(pool, workspace_id, observer_id, observed_id, vector,
                                         top_k or DEFAULT_TOP_K, max_distance, filters)


async def delete(pool: asyncpg.Pool, workspace_id: str, conclusion_id: str) -> None:
    async with transaction(pool) as conn:
        found = await store.delete_conclusion(conn, workspace_id, conclusion_id)
    if not found:
        raise not_found("conclusion", workspaceId=workspace_id, conclusionId=conclusion_id)


REEMBED_PAGE = 256


async def embed_missing(pool: asyncpg.Pool, embedder: Embedder) -> int:
    """Give every conclusion without a vector one (after `migrate --reset-embeddings`,
    which clears them: without a vector a conclusion drops out of semantic queries and of
    the dialectic's search). A page at a time, each committed; returns how many."""
    done, after = 0, ("", "")
    while page := await store.without_embedding(pool, after, REEMBED_PAGE):
        vectors = await embedder.embed([content for _, _, content in page])
        keys = [(ws, cid) for ws, cid, _ in page]
        await store.set_embeddings(pool, keys, embedder.model_id, vectors)
        done, after = done + len(page), keys[-1]
    return done
