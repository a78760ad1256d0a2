"""Dreams: consolidation of what an observer knows about a peer.

A dream is due for a pair once `DREAM_CONCLUSION_THRESHOLD` new explicit conclusions piled up
since its last one, and no sooner than `DREAM_MIN_INTERVAL_SECONDS` after it; one at most is
pending per pair. An `omni` dream derives deductive, inductive and contradiction conclusions
(each with its premises), marks conclusions that newer ones supersede as invalidated (never
deletes them) and refreshes the peer card; a `card_refresh` dream only rebuilds the card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from honcho_grpc import model
from honcho_grpc.domain import conclusions, peer_cards
from honcho_grpc.domain.conclusions import Candidate, Pair
from honcho_grpc.providers.tokens import count_tokens
from honcho_grpc.settings import Settings
from honcho_grpc.store import dreams as store
from honcho_grpc.store import memory, peers, queue
from honcho_grpc.work_units import DreamPayload


async def schedule_if_due(conn: asyncpg.Connection, settings: Settings, pair: Pair,
                          session_id: str | None) -> bool:
    """Queue an omni dream for the pair if one is due (see above); True if queued."""
    state = await store.dream_state(conn, pair.workspace_id, pair.observer_id,
                                    pair.observed_id, settings.dream.min_interval_seconds)
    if state.dreamt_within:
        return False
    if state.explicit - state.explicit_at_last_dream < settings.dream.conclusion_threshold:
        return False
    return await queue.enqueue_dream(conn, pair.workspace_id, DreamPayload(
        observer=pair.observer_id, observed=pair.observed_id, dream_type="omni",
        session_id=session_id))


@dataclass(frozen=True)
class Shown:
    """A live conclusion as a dream reads it."""

    conclusion_id: str
    content: str
    level: str
    created_at: str  # ISO 8601
    source_message_ids: tuple[str, ...] = ()


async def live_conclusions(pool: asyncpg.Pool, pair: Pair, limit: int) -> list[Shown]:
    """The pair's newest live conclusions (at most `limit`), oldest first."""
    rows = await memory.conclusions_recent(pool, pair.workspace_id, pair.observer_id,
                                           pair.observed_id, None, limit)
    return [Shown(c.conclusion_id, c.content, c.level, c.created_at.isoformat(),
                  tuple(c.source_message_ids))
            for c in reversed(rows)]


async def source_messages(pool: asyncpg.Pool, pair: Pair, shown: list[Shown],
                          sessions: list[str] | None, max_tokens: int) -> list[model.Message]:
    """The messages the shown conclusions were drawn from, those of the newest conclusions
    first, within `max_tokens` (the dream reads what was said, in its words, beside what
    was concluded); only in `sessions` (None: all), oldest first."""
    wanted = list(dict.fromkeys(i for c in reversed(shown) for i in c.source_message_ids))
    if not wanted or max_tokens <= 0:
        return []
    rows = {m.message_id: m for m in await memory.messages_by_ids(
        pool, pair.workspace_id, wanted, sessions)}
    kept: list[model.Message] = []
    room = max_tokens
    for message_id in wanted:
        m = rows.get(message_id)
        if m is None:
            continue
        room -= m.token_count or count_tokens(m.content)
        if room < 0:
            break
        kept.append(m)
    return sorted(kept, key=lambda m: (m.created_at, m.session_id, m.seq))


@dataclass
class Outcome:
    """What a dream decided, ready to be written."""

    pair: Pair
    queue_ids: list[int]
    omni: bool
    derived: list[Candidate] = field(default_factory=list)  # premises not yet checked
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (old id, newer id)
    card: list[str] | None = None  # the refreshed card, if one was made
    card_before: list[str] | None = None


async def save(conn: asyncpg.Connection, outcome: Outcome, *, model: str | None) -> None:
    """Write a dream's outcome (inside the fenced completion): the derived conclusions whose
    premises are still live, the supersessions between live conclusions, the card, and --
    for an omni dream -- when the pair dreamt. Nothing if either peer is gone."""
    pair = outcome.pair
    needed = sorted({pair.observer_id, pair.observed_id})
    if len(await peers.lock_peers(conn, pair.workspace_id, needed)) < len(needed):
        return
    await _write_plan(conn, outcome, model)
    if outcome.card is not None:
        await peer_cards.save_derived(conn, pair.workspace_id, pair.observer_id,
                                      pair.observed_id, outcome.card, outcome.card_before)
    if outcome.omni:
        await store.remember_dream(conn, pair.workspace_id, pair.observer_id,
                                   pair.observed_id)


# Premises a derived conclusion of each level must cite: a pattern or a contradiction is
# between at least two statements; a deduction may follow from one.
MIN_PREMISES = {"deductive": 1, "inductive": 2, "contradiction": 2}


async def _write_plan(conn: asyncpg.Connection, outcome: Outcome, model: str | None) -> None:
    """Only what passes `valid_derived` and `valid_supersession` is written; a derived
    conclusion is dated by its latest premise (when what it rests on was said)."""
    pair = outcome.pair
    cited = {i for d in outcome.derived for i in d.premise_ids} | {
        i for s in outcome.superseded for i in s}
    said = await _live_times(conn, pair, cited)
    items = []
    for d in outcome.derived:
        premises = [i for i in d.premise_ids if i in said]
        if valid_derived(d.level, premises):
            items.append(Candidate(content=d.content, level=d.level, embedding=d.embedding,
                                   premise_ids=premises,
                                   created_at=max(said[i] for i in premises)))
    if items and not await conclusions.already_derived(conn, pair, outcome.queue_ids):
        written = await conclusions.write_derived(
            conn, pair, items, model=model,
            metadata={"queue_ids": [str(i) for i in outcome.queue_ids], "dream": True})
        await conclusions.announce_derived(conn, pair, written, dream=True)
    for old, new in outcome.superseded:
        if valid_supersession(said, old, new):
            await conclusions.supersede(conn, pair, old, new)


def valid_derived(level: str, live_premises: list[str]) -> bool:
    """Enough live premises for the level (see MIN_PREMISES)."""
    return len(set(live_premises)) >= MIN_PREMISES.get(level, 1)


def valid_supersession(said: dict[str, datetime], old: str, new: str) -> bool:
    """Both live, and the update not said before what it replaces: an older statement never
    replaces a newer one. Two said at the same instant (messages of one write share their
    time) cannot be ordered by it, so the model's reading of the conversation decides."""
    return old in said and new in said and old != new and said[new] >= said[old]


async def _live_times(conn: asyncpg.Connection, pair: Pair,
                      ids: set[str]) -> dict[str, datetime]:
    """The live ones among `ids`, with when each was said."""
    if not ids:
        return {}
    rows = await memory.conclusions_of_pair(conn, pair.workspace_id, pair.observer_id,
                                            pair.observed_id, list(ids))
    return {c.conclusion_id: c.created_at for c in rows if c.valid}
