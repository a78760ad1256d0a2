"""Derivation (the representation task): what a batch of new messages shows the model about
its sender, and writing what was derived -- explicit conclusions for every observer named in
the batch, their peer cards and, past a threshold, a dream. Writes run inside the worker's
fenced completion, so they commit with the queue rows they complete or not at all."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from honcho_grpc.domain import conclusions, dreams, peer_cards
from honcho_grpc.domain.conclusions import Candidate, Pair
from honcho_grpc.domain.transactions import connection
from honcho_grpc.model import Fact
from honcho_grpc.settings import Settings
from honcho_grpc.store import memory, peers
from honcho_grpc.store import messages as store_messages

# Messages shown around a batch: the one before it (what the sender answers) and the others'
# messages interleaved with it.
CONTEXT_BEFORE = 1
MAX_CONTEXT_MESSAGES = 300


def transcript_line(created_at: datetime, peer_id: str, content: str) -> str:
    """'YYYY-MM-DD HH:MM:SS speaker: text', the format every prompt uses."""
    return f"{created_at:%Y-%m-%d %H:%M:%S} {peer_id}: {content}"


@dataclass
class Batch:
    """A batch's messages that still exist, and the transcript around them."""

    message_ids: list[str]
    lines: list[str]
    latest: str  # when the newest was written (ISO 8601)
    # Every transcript line's (time, text), by the timestamp text the lines show it with.
    times: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)

    @property
    def latest_at(self) -> datetime:
        return datetime.fromisoformat(self.latest)

    def said_at(self, stamp: str, fact: str) -> datetime:
        """When a fact was said: the time of the line whose timestamp the model copied (of
        several lines in that second, the one sharing most words with the fact), else -- no
        copy, a wrong one, or one after the batch -- the batch's newest message."""
        lines = self.times.get(stamp.strip()[:19], [])
        latest = self.latest_at
        if not lines:
            return latest
        words = _words(fact)
        at = max(lines, key=lambda line: (len(words & _words(line[1])), line[0]))[0]
        return at if at <= latest else latest


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


async def read_batch(pool: asyncpg.Pool, workspace_id: str, session_id: str, observed: str,
                     message_ids: list[str]) -> Batch | None:
    """None when every message of the batch was deleted meanwhile."""
    async with connection(pool) as conn:
        own = sorted(await memory.messages_by_ids(conn, workspace_id, message_ids, None),
                     key=lambda m: m.seq)
        if not own:
            return None
        rows = await memory.messages_in_range(conn, workspace_id, session_id,
                                              own[0].seq - CONTEXT_BEFORE, own[-1].seq,
                                              MAX_CONTEXT_MESSAGES)
    first = own[0].seq
    # The sender's own earlier message was derived from already: context only from others.
    shown = [r for r in rows if r.seq >= first or r.peer_id != observed]
    lines = [transcript_line(r.created_at, r.peer_id, r.content) for r in shown]
    times: dict[str, list[tuple[datetime, str]]] = {}
    for r in shown:
        times.setdefault(f"{r.created_at:%Y-%m-%d %H:%M:%S}", []).append(
            (r.created_at, r.content))
    return Batch([m.message_id for m in own], lines, own[-1].created_at.isoformat(), times)


@dataclass
class Observation:
    """What the model derived from a batch, ready to be written."""

    workspace_id: str
    session_id: str
    observed: str
    observers: list[str]
    queue_ids: list[int]
    batch: Batch
    facts: list[Fact]
    vectors: list[np.ndarray]
    cards_before: dict[str, list[str] | None] = field(default_factory=dict)
    cards: dict[str, list[str]] = field(default_factory=dict)  # per observer, if updated


async def save(conn: asyncpg.Connection, settings: Settings, o: Observation, *,
               model: str | None, dream_enabled: bool) -> None:
    """For each observer still there: the facts as explicit conclusions (unless this batch
    wrote them already), the updated card, and a dream if one is due. Nothing when the
    sender or every source message is gone. Peers and messages are share-locked, so a
    concurrent delete cascades over what is written here rather than racing it."""
    alive = await peers.lock_peers(conn, o.workspace_id, [*o.observers, o.observed])
    if o.observed not in alive:
        return
    sources = await store_messages.lock_messages(conn, o.workspace_id, o.batch.message_ids)
    if not sources:
        return
    for observer in (p for p in o.observers if p in alive):
        pair = Pair(o.workspace_id, observer, o.observed)
        if o.facts and not await conclusions.already_derived(conn, pair, o.queue_ids):
            await _write_facts(conn, o, pair, sources, model)
        if observer in o.cards:
            await peer_cards.save_derived(conn, o.workspace_id, observer, o.observed,
                                          o.cards[observer], o.cards_before.get(observer))
        if dream_enabled:
            await dreams.schedule_if_due(conn, settings, pair, o.session_id)


def _in_order(o: Observation) -> list[datetime]:
    """Each fact's time; facts dated to the same instant (messages of one call share theirs)
    a microsecond apart, in the order they were extracted (the transcript's), so that "newer"
    keeps meaning "said later" when a dream compares them."""
    out: list[datetime] = []
    for f in o.facts:
        when = o.batch.said_at(f.said_at, f.content)
        if out and when <= out[-1] and when > out[-1] - timedelta(seconds=1):
            when = out[-1] + timedelta(microseconds=1)
        out.append(when)
    return out


async def _write_facts(conn: asyncpg.Connection, o: Observation, pair: Pair,
                       sources: list[str], model: str | None) -> None:
    items = [Candidate(content=f.content, level="explicit", embedding=v,
                       session_id=o.session_id, source_message_ids=sources,
                       created_at=when)
             for f, v, when in zip(o.facts, o.vectors, _in_order(o), strict=True)]
    written = await conclusions.write_derived(
        conn, pair, items, model=model,
        metadata={"queue_ids": [str(i) for i in o.queue_ids],
                  "message_created_at": o.batch.latest})
    await conclusions.announce_derived(conn, pair, written, session_id=o.session_id,
                                       level="explicit")
