"""Derivation (the representation task): what a stretch of new messages shows the model about
its speakers, and writing what was derived -- explicit conclusions for every observer of
each speaker, a card refresh where one is due and, past a threshold, a dream. Writes run
inside the worker's fenced completion, so they commit with the queue rows they complete or
not at all."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
import numpy as np

from honcho_grpc.domain import conclusions, dreams
from honcho_grpc.domain.conclusions import Candidate, Pair
from honcho_grpc.domain.transactions import connection
from honcho_grpc.model import Fact
from honcho_grpc.settings import Settings
from honcho_grpc.store import memory, peers, queue
from honcho_grpc.store import messages as store_messages

# Messages shown around a batch: the one before it (what the sender answers) and the others'
# messages interleaved with it.
CONTEXT_BEFORE = 1
MAX_CONTEXT_MESSAGES = 300


_WORD = re.compile(r"\w+")
Said = tuple[datetime, frozenset[str]]  # when a line was written, and its words


def transcript_line(created_at: datetime, peer_id: str, content: str) -> str:
    """'YYYY-MM-DD HH:MM:SS speaker: text', the format every prompt uses."""
    return f"{created_at:%Y-%m-%d %H:%M:%S} {peer_id}: {content}"


@dataclass
class Batch:
    """A batch's messages that still exist, and the transcript around them."""

    message_ids: list[str]
    lines: list[str]
    latest: str  # when the newest was written (ISO 8601)
    # Every transcript line's (time, words), by the timestamp text the lines show it with.
    times: dict[str, list[Said]] = field(default_factory=dict)

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
        at = max(lines, key=lambda line: (len(words & line[1]), line[0]))[0]
        return at if at <= latest else latest


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


@dataclass
class Speaker:
    """One speaker's rows in a stretch: whom their facts are for, and their messages."""

    observed: str
    observers: list[str]
    message_ids: list[str] = field(default_factory=list)
    queue_ids: list[int] = field(default_factory=list)


@dataclass
class Stretch:
    """A stretch of a session read once for every speaker whose rows it covers: the new
    lines (every message from the first pending one to the last, all speakers), the line
    before them as context, and per speaker the messages that still exist."""

    speakers: list[Speaker]
    lines: list[str]
    earlier: list[str]
    latest: str
    times: dict[str, list[Said]]
    own: dict[str, list[str]]  # observed -> its message ids that still exist

    def batch_of(self, speaker: Speaker) -> Batch:
        return Batch(self.own.get(speaker.observed, []), self.lines, self.latest, self.times)


async def read_stretch(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                       speakers: list[Speaker]) -> Stretch | None:
    """None when every message of the stretch was deleted meanwhile; speakers whose
    messages are all gone are left out."""
    wanted = [m for s in speakers for m in s.message_ids]
    async with connection(pool) as conn:
        found = sorted(await memory.messages_by_ids(conn, workspace_id, wanted, None),
                       key=lambda m: m.seq)
        if not found:
            return None
        rows = await memory.messages_in_range(conn, workspace_id, session_id,
                                              found[0].seq - CONTEXT_BEFORE, found[-1].seq,
                                              MAX_CONTEXT_MESSAGES)
    first = found[0].seq
    alive = {m.message_id for m in found}
    own = {s.observed: [m for m in s.message_ids if m in alive] for s in speakers}
    present = [s for s in speakers if own[s.observed]]
    new = [r for r in rows if r.seq >= first]
    before = [r for r in rows if r.seq < first]
    return Stretch(present, [transcript_line(r.created_at, r.peer_id, r.content) for r in new],
                   [transcript_line(r.created_at, r.peer_id, r.content) for r in before],
                   found[-1].created_at.isoformat(), line_times(new), own)


class Written(Protocol):
    """A message as `line_times` reads it."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def content(self) -> str: ...


def line_times(rows: Sequence[Written]) -> dict[str, list[Said]]:
    """Each message's (time, words) by the timestamp text its transcript line shows. The
    words are taken once here: `said_at` compares every fact with every line of its second,
    and an import writes a whole chunk in one second (19,000 word sets per 1,000 bench
    messages when they were taken at each comparison)."""
    times: dict[str, list[Said]] = {}
    for r in rows:
        times.setdefault(f"{r.created_at:%Y-%m-%d %H:%M:%S}", []).append(
            (r.created_at, _words(r.content)))
    return times


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


async def save(conn: asyncpg.Connection, settings: Settings, o: Observation, *,
               model: str | None, dream_enabled: bool) -> list[tuple[str, str]]:
    """For each observer still there: the facts as explicit conclusions (unless these rows
    wrote them already) and a dream if one is due. Returns the (observer, observed) pairs
    that got new facts, whose cards may be due for a refresh (`queue_cards`). Nothing when
    the sender or every source message is gone. Peers and messages are share-locked, so a
    concurrent delete cascades over what is written here rather than racing it."""
    if not o.batch.message_ids:
        return []
    alive = await peers.lock_peers(conn, o.workspace_id, sorted({*o.observers, o.observed}))
    if o.observed not in alive:
        return []
    sources = await store_messages.lock_messages(conn, o.workspace_id, o.batch.message_ids)
    if not sources:
        return []
    wrote: list[tuple[str, str]] = []
    for observer in (p for p in o.observers if p in alive):
        pair = Pair(o.workspace_id, observer, o.observed)
        if o.facts and not await conclusions.already_derived(conn, pair, o.queue_ids):
            await _write_facts(conn, o, pair, sources, model)
            wrote.append((observer, o.observed))
        if dream_enabled:
            await dreams.schedule_if_due(conn, settings, pair, o.session_id)
    return wrote


async def save_all(conn: asyncpg.Connection, settings: Settings,
                   observations: list[Observation], *, model: str | None,
                   dream_enabled: bool, cards: bool) -> None:
    """`save` for every speaker of a stretch (in peer order, so that two transactions take
    their locks in the same order), then one card refresh queued per pair that is due."""
    wrote: list[tuple[str, str]] = []
    for o in sorted(observations, key=lambda o: o.observed):
        wrote += await save(conn, settings, o, model=model, dream_enabled=dream_enabled)
    if cards and wrote:
        await queue.enqueue_cards(conn, observations[0].workspace_id, wrote,
                                  settings.peer_card.refresh_seconds,
                                  observations[0].session_id)


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
