"""SQL for what the worker derives and callers read at prompt time: summaries, peer cards,
conclusions picked for a representation, recent messages within a token budget, and what
the dialectic's tools look up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import numpy as np

from honcho_grpc.model import Conclusion, Message, PeerCard, Summary
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store import filters as f
from honcho_grpc.store.conclusions import C_COLUMNS
from honcho_grpc.store.messages import COLUMNS, M_COLUMNS
from honcho_grpc.store.rows import columns, every, one

SUMMARY = columns(Summary)
PEER_CARD = columns(PeerCard)
# Rows scanned at most when filling a token budget with recent messages (each >= 1 token).
MAX_CONTEXT_MESSAGES = 2000


async def summaries(conn: Executor, workspace_id: str, session_id: str) -> dict[str, Summary]:
    """The session's summaries by type ("short", "long"); a type not written yet is absent."""
    rows = await conn.fetch(
        f"SELECT {SUMMARY} FROM summaries WHERE workspace_id = $1 AND session_id = $2",
        workspace_id, session_id)
    return {s.summary_type: s for s in every(Summary, rows)}


async def save_summary(conn: asyncpg.Connection, workspace_id: str, session_id: str,
                       summary_type: str, content: str, last_message_id: str,
                       last_message_seq: int, token_count: int) -> bool:
    """Store a session's summary of one tier unless the session is gone or a summary reaching
    at least as far is stored already (an older summary never overwrites a newer one, even
    when two workers race). True if stored. The session row is share-locked so that a
    concurrent DeleteSession cascades over it rather than racing it."""
    status: str = await conn.execute(
        "INSERT INTO summaries (workspace_id, session_id, summary_type, content, "
        "last_message_id, last_message_seq, token_count) "
        "SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM sessions "
        "WHERE workspace_id = $1 AND session_id = $2 FOR KEY SHARE) "
        "ON CONFLICT (workspace_id, session_id, summary_type) DO UPDATE SET "
        "content = EXCLUDED.content, last_message_id = EXCLUDED.last_message_id, "
        "last_message_seq = EXCLUDED.last_message_seq, token_count = EXCLUDED.token_count, "
        "created_at = now() WHERE summaries.last_message_seq < EXCLUDED.last_message_seq",
        workspace_id, session_id, summary_type, content, last_message_id, last_message_seq,
        token_count)
    return status != "INSERT 0 0"


async def peer_card(conn: Executor, workspace_id: str, observer_id: str,
                    observed_id: str) -> PeerCard | None:
    return one(PeerCard, await conn.fetchrow(
        f"SELECT {PEER_CARD} FROM peer_cards WHERE workspace_id = $1 AND observer_id = $2 "
        "AND observed_id = $3", workspace_id, observer_id, observed_id))


async def set_peer_card(conn: Conn, workspace_id: str, observer_id: str, observed_id: str,
                        entries: list[str]) -> PeerCard:
    row = await conn.fetchrow(
        "INSERT INTO peer_cards (workspace_id, observer_id, observed_id, entries) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, observer_id, observed_id) "
        f"DO UPDATE SET entries = EXCLUDED.entries, updated_at = now() RETURNING {PEER_CARD}",
        workspace_id, observer_id, observed_id, entries)
    return PeerCard(*row)


async def touch_peer_card(conn: Conn, workspace_id: str, observer_id: str,
                          observed_id: str) -> None:
    """Mark a card refreshed though unchanged (card refreshes are scheduled from it)."""
    await conn.execute(
        "UPDATE peer_cards SET updated_at = now() WHERE workspace_id = $1 AND observer_id = $2 "
        "AND observed_id = $3", workspace_id, observer_id, observed_id)


# A read's sessions: one session (its id), a boundary (a scope's sessions, an allowlist; an
# empty one admits nothing), or None for all.
Sessions = str | Sequence[str] | None


def _sessions(sessions: Sessions) -> list[str] | None:
    if isinstance(sessions, str):
        return [sessions] if sessions else None
    return None if sessions is None else list(sessions)


def _pair(sessions: list[str] | None) -> str:
    base = ("c.workspace_id = $1 AND c.observer_id = $2 AND c.observed_id = $3 "
            "AND c.invalidated_at IS NULL")
    # Derived levels span sessions, so a session restriction serves explicit ones only.
    if sessions is None:
        return base
    within = f.session_boundary("c.session_id", "$4", sessions)
    return f"{base} AND {within} AND c.level = 'explicit'"


async def conclusions_recent(conn: Executor, workspace_id: str, observer_id: str,
                             observed_id: str, session_id: Sessions,
                             limit: int) -> list[Conclusion]:
    ids = _sessions(session_id)
    args = [workspace_id, observer_id, observed_id] + ([ids] if ids is not None else [])
    return every(Conclusion, await conn.fetch(
        f"SELECT {C_COLUMNS} FROM conclusions c WHERE {_pair(ids)} "
        f"ORDER BY c.created_at DESC, c.conclusion_id DESC LIMIT {int(limit)}", *args))


async def conclusions_reinforced(conn: Executor, workspace_id: str, observer_id: str,
                                 observed_id: str, session_id: Sessions,
                                 limit: int) -> list[Conclusion]:
    ids = _sessions(session_id)
    args = [workspace_id, observer_id, observed_id] + ([ids] if ids is not None else [])
    return every(Conclusion, await conn.fetch(
        f"SELECT {C_COLUMNS} FROM conclusions c WHERE {_pair(ids)} "
        f"AND c.times_derived > 1 ORDER BY c.times_derived DESC, c.created_at DESC "
        f"LIMIT {int(limit)}", *args))


async def conclusions_semantic(conn: Executor, workspace_id: str, observer_id: str,
                               observed_id: str, session_id: Sessions, vector: np.ndarray,
                               limit: int, max_distance: float) -> list[Conclusion]:
    args: list[object] = [workspace_id, observer_id, observed_id]
    ids = _sessions(session_id)
    where = _pair(ids)
    if ids is not None:
        args.append(ids)
    args.append(vector)
    q = f"${len(args)}::vector"
    if max_distance > 0:
        args.append(max_distance)
        where += f" AND (c.embedding <=> {q}) <= ${len(args)}"
    return every(Conclusion, await conn.fetch(
        f"SELECT {C_COLUMNS} FROM conclusions c WHERE {where} AND c.embedding IS NOT NULL "
        f"ORDER BY c.embedding <=> {q} LIMIT {int(limit)}", *args))


async def recent_messages_within(conn: Executor, workspace_id: str, session_id: str,
                                 after_seq: int, budget: int) -> list[Message]:
    """Newest messages after `after_seq` whose token counts add up to at most `budget`,
    oldest first. Reads backwards from the newest through the (session, seq) index and stops
    early, so the cost does not grow with the session's length."""
    if budget <= 0:
        return []
    rows = await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM (
            SELECT {M_COLUMNS}, sum(m.token_count) OVER (ORDER BY m.seq DESC) AS running
            FROM messages m
            WHERE m.workspace_id = $1 AND m.session_id = $2 AND m.seq > $3
            ORDER BY m.seq DESC LIMIT $5
        ) recent WHERE running <= $4 ORDER BY seq
        """,
        workspace_id, session_id, after_seq, budget, min(budget, MAX_CONTEXT_MESSAGES))
    return every(Message, rows)


# -- what the dialectic's tools look up --------------------------------------------------------

async def sessions_of_peer(conn: Executor, workspace_id: str, peer_id: str) -> set[str]:
    """Sessions the peer is (or was) a member of: what it has seen."""
    rows = await conn.fetch("SELECT session_id FROM session_peers WHERE workspace_id = $1 "
                            "AND peer_id = $2", workspace_id, peer_id)
    return {r["session_id"] for r in rows}


async def conclusions_of_pair(conn: Executor, workspace_id: str, observer_id: str,
                              observed_id: str, conclusion_ids: list[str]
                              ) -> list[Conclusion]:
    """The given conclusions of one (observer, observed) pair, superseded ones included (the
    caller marks them), oldest first."""
    return every(Conclusion, await conn.fetch(
        f"SELECT {C_COLUMNS} FROM conclusions c WHERE c.workspace_id = $1 "
        "AND c.observer_id = $2 AND c.observed_id = $3 AND c.conclusion_id = ANY($4::text[]) "
        "ORDER BY c.created_at, c.conclusion_id",
        workspace_id, observer_id, observed_id, conclusion_ids))


async def messages_of_peer_between(conn: Executor, workspace_id: str, peer_id: str,
                                   session_ids: list[str] | None, start: datetime | None,
                                   end: datetime | None, limit: int) -> list[Message]:
    """The peer's messages with start <= created_at < end (either bound open), oldest first,
    in `session_ids` only unless None. Uses the (workspace, peer, created_at) index."""
    return every(Message, await conn.fetch(
        f"SELECT {M_COLUMNS} FROM messages m WHERE m.workspace_id = $1 AND m.peer_id = $2 "
        "AND ($3::text[] IS NULL OR m.session_id = ANY($3::text[])) "
        "AND ($4::timestamptz IS NULL OR m.created_at >= $4) "
        "AND ($5::timestamptz IS NULL OR m.created_at < $5) "
        "ORDER BY m.created_at, m.seq LIMIT $6",
        workspace_id, peer_id, session_ids, start, end, limit))


async def messages_by_ids(conn: Executor, workspace_id: str, message_ids: list[str],
                          session_ids: list[str] | None) -> list[Message]:
    """The given messages, in `session_ids` only unless None, oldest first."""
    return every(Message, await conn.fetch(
        f"SELECT {M_COLUMNS} FROM messages m WHERE m.workspace_id = $1 "
        "AND m.message_id = ANY($2::text[]) "
        "AND ($3::text[] IS NULL OR m.session_id = ANY($3::text[])) "
        "ORDER BY m.created_at, m.seq", workspace_id, message_ids, session_ids))


async def messages_between(conn: Executor, workspace_id: str, session_ids: list[str] | None,
                           start: datetime | None, end: datetime | None,
                           limit: int) -> list[Message]:
    """Every speaker's messages with start <= created_at < end (either bound open), oldest
    first, in `session_ids` only unless None."""
    return every(Message, await conn.fetch(
        f"SELECT {M_COLUMNS} FROM messages m WHERE m.workspace_id = $1 "
        "AND ($2::text[] IS NULL OR m.session_id = ANY($2::text[])) "
        "AND ($3::timestamptz IS NULL OR m.created_at >= $3) "
        "AND ($4::timestamptz IS NULL OR m.created_at < $4) "
        "ORDER BY m.created_at, m.session_id, m.seq LIMIT $5",
        workspace_id, session_ids, start, end, limit))


async def messages_containing(conn: Executor, workspace_id: str, text: str,
                              session_ids: list[str] | None, start: datetime | None,
                              end: datetime | None, limit: int) -> tuple[list[Message], int]:
    """Every speaker's messages holding all the words of `text` in any form (the full-text
    index, stemmed as content is indexed), or, when `text` has no indexable word ("$", "%",
    stop words only), holding it as a literal substring. The `limit` newest, oldest first,
    and how many match in all. The substring branch runs only when the first cannot match
    (a one-time filter), so a word search stays on the GIN index."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    scope = ("m.workspace_id = $1 AND ($3::text[] IS NULL OR m.session_id = ANY($3::text[])) "
             "AND ($4::timestamptz IS NULL OR m.created_at >= $4) "
             "AND ($5::timestamptz IS NULL OR m.created_at < $5)")
    rows = await conn.fetch(
        f"""
        SELECT {COLUMNS}, count(*) OVER () AS total FROM (
            SELECT {M_COLUMNS} FROM messages m
            WHERE {scope} AND m.search_text @@ plainto_tsquery('english', $2)
            UNION ALL
            SELECT {M_COLUMNS} FROM messages m
            WHERE {scope} AND numnode(plainto_tsquery('english', $2)) = 0
              AND m.content ILIKE $6
        ) found ORDER BY created_at DESC, seq DESC LIMIT $7
        """, workspace_id, text, session_ids, start, end, pattern, limit)
    total = rows[0]["total"] if rows else 0
    found = every(Message, [tuple(r)[:-1] for r in rows])
    return found[::-1], total


async def messages_around(conn: Executor, workspace_id: str, message_id: str,
                          session_ids: list[str] | None, before: int,
                          after: int) -> list[Message]:
    """The message and up to `before`/`after` messages either side of it in its session, in
    order; nothing when it is absent or not in `session_ids` (None: any session)."""
    return every(Message, await conn.fetch(
        f"SELECT {M_COLUMNS} FROM messages hit JOIN messages m "
        "ON m.workspace_id = hit.workspace_id AND m.session_id = hit.session_id "
        "AND m.seq BETWEEN hit.seq - $4 AND hit.seq + $5 "
        "WHERE hit.workspace_id = $1 AND hit.message_id = $2 "
        "AND ($3::text[] IS NULL OR hit.session_id = ANY($3::text[])) ORDER BY m.seq",
        workspace_id, message_id, session_ids, before, after))


async def conclusions_resting_on(conn: Executor, workspace_id: str, observer_id: str,
                                 observed_id: str, conclusion_id: str,
                                 limit: int) -> list[Conclusion]:
    """The pair's conclusions that cite `conclusion_id` as a premise (superseded ones
    included; the caller marks them), oldest first. Uses the premise_ids GIN index."""
    return every(Conclusion, await conn.fetch(
        f"SELECT {C_COLUMNS} FROM conclusions c WHERE c.workspace_id = $1 "
        "AND c.observer_id = $2 AND c.observed_id = $3 AND c.premise_ids @> ARRAY[$4::text] "
        "ORDER BY c.created_at, c.conclusion_id LIMIT $5",
        workspace_id, observer_id, observed_id, conclusion_id, limit))


async def conclusions_replaced_by(conn: Executor, workspace_id: str, observer_id: str,
                                  observed_id: str, conclusion_ids: list[str],
                                  limit: int) -> list[Conclusion]:
    """The pair's superseded conclusions whose replacement is one of `conclusion_ids`: the
    earlier values of facts that changed, oldest first."""
    return every(Conclusion, await conn.fetch(
        f"SELECT {C_COLUMNS} FROM conclusions c WHERE c.workspace_id = $1 "
        "AND c.observer_id = $2 AND c.observed_id = $3 "
        "AND c.superseded_by = ANY($4::text[]) "
        "ORDER BY c.created_at, c.conclusion_id LIMIT $5",
        workspace_id, observer_id, observed_id, conclusion_ids, limit))


# -- what the worker reads to derive -----------------------------------------------------------

async def messages_in_range(conn: Conn, workspace_id: str, session_id: str, first_seq: int,
                            last_seq: int, limit: int) -> list[Message]:
    """The session's messages with first_seq <= seq <= last_seq, in order, at most `limit`."""
    return every(Message, await conn.fetch(
        f"SELECT {M_COLUMNS} FROM messages m WHERE m.workspace_id = $1 AND m.session_id = $2 "
        "AND m.seq BETWEEN $3 AND $4 ORDER BY m.seq LIMIT $5",
        workspace_id, session_id, first_seq, last_seq, limit))


async def messages_to_summarize(conn: Conn, workspace_id: str, session_id: str, after_seq: int,
                                upto_seq: int, budget: int) -> list[Message]:
    """Messages with after_seq < seq <= upto_seq, oldest first: the newest ones whose token
    counts add up to at most `budget`, and the one at `upto_seq` whatever its size."""
    return every(Message, await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM (
            SELECT {M_COLUMNS}, sum(m.token_count) OVER (ORDER BY m.seq DESC) AS running
            FROM messages m WHERE m.workspace_id = $1 AND m.session_id = $2
              AND m.seq > $3 AND m.seq <= $4
            ORDER BY m.seq DESC LIMIT $6
        ) recent WHERE running <= $5 OR seq = $4 ORDER BY seq
        """, workspace_id, session_id, after_seq, upto_seq, budget, MAX_CONTEXT_MESSAGES))
