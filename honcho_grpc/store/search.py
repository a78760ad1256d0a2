"""SQL for message search: candidate retrieval by full text and by vector, then BM25 and
cosine scores for the candidates. Fusion happens in domain/search.py."""

from __future__ import annotations

import math
from datetime import datetime
from typing import NamedTuple

import numpy as np

from honcho_grpc.db.pool import HNSW_EF_SEARCH
from honcho_grpc.model import Json, Message
from honcho_grpc.store import Conn
from honcho_grpc.store import filters as f
from honcho_grpc.store.messages import M_COLUMNS
from honcho_grpc.store.rows import every

K1, B = 1.2, 0.75


class Scope(NamedTuple):
    workspace_id: str
    session_id: str = ""
    peer_id: str = ""


class Candidate(NamedTuple):
    """A message found by either arm, with both scores (cosine None: not embedded yet)."""

    message_id: str
    session_id: str
    peer_id: str
    seq: int
    terms: str  # its search_text as text: 'lexeme':positions ...
    length: int  # lexemes in it
    cosine: float | None
    in_window: bool


def scope_sql(scope: Scope, filters: Json | None, params: f.Params,
              alias: str = "m") -> str:
    """The scope on the columns of `alias` (messages, or message_embeddings, which carry the
    same keys); filters always name the message row, `m`."""
    clauses = [f"{alias}.workspace_id = {params.add(scope.workspace_id)}"]
    if scope.session_id:
        clauses.append(f"{alias}.session_id = {params.add(scope.session_id)}")
    if scope.peer_id:
        clauses.append(f"{alias}.peer_id = {params.add(scope.peer_id)}")
    clauses.append(f.compile_filter(filters, f.message_filters("m"), params))
    return " AND ".join(clauses)


class QueryLexeme(NamedTuple):
    """A word of the query as the index holds it, and in how many of the workspace's
    messages it is (0: none counted yet; of `docs` messages counted)."""

    lexeme: str
    ndoc: int
    docs: int
    avgdl: float  # the workspace's mean message length, in lexemes


async def query_lexemes(conn: Conn, workspace_id: str, query: str) -> list[QueryLexeme]:
    """The query's lexemes, rarest first: its stemmed words (`english`, as message content is
    indexed) and, where the index knows them, its words unstemmed (`simple`, as speakers'
    names are indexed: "James" is `jame` in content but `james` as a speaker). An unstemmed
    word the index does not know could only match a speaker, and there is none by it."""
    rows = await conn.fetch(
        "WITH q AS (SELECT lexeme FROM unnest(to_tsvector('english', $2)) "
        "           UNION SELECT lexeme FROM unnest(to_tsvector('simple', $2))), "
        "docs AS (SELECT coalesce(max(docs), 0) AS docs, "
        "         greatest(coalesce(max(total_length)::float8 / greatest(max(docs), 1), 1), 1) "
        "         AS avgdl FROM search_stats WHERE workspace_id = $1) "
        "SELECT q.lexeme, coalesce(s.ndoc, 0) AS ndoc, docs.docs, docs.avgdl "
        "FROM q CROSS JOIN docs "
        "LEFT JOIN lexeme_stats s ON s.workspace_id = $1 AND s.lexeme = q.lexeme "
        "WHERE s.ndoc > 0 OR q.lexeme IN "
        "  (SELECT lexeme FROM unnest(to_tsvector('english', $2))) "
        "ORDER BY coalesce(s.ndoc, 0), q.lexeme", workspace_id, query)
    return every(QueryLexeme, rows)


async def text_candidates(conn: Conn, scope: Scope, filters: Json | None,
                          weights: dict[str, float], window: tuple[datetime, datetime] | None,
                          limit: int) -> list[str]:
    """Messages containing any of the lexemes `weights` names (the rarer ones: a cheap GIN
    lookup), and those created in `window`, best first: by the sum of the weights (idf) of
    the lexemes each contains, an approximation of BM25 that needs no per-row unnest."""
    if not weights and window is None:
        return []
    params = f.Params()
    where = scope_sql(scope, filters, params)
    # Lexemes are already normalised; quote each so to_tsquery treats it literally.
    quoted = ["'" + lx.replace("'", "''") + "'" for lx in weights]
    rank = " + ".join(
        f"{w:.6f} * (m.search_text @@ {params.add(q)}::tsquery)::int"
        for q, w in zip(quoted, weights.values(), strict=True)) or "0"
    matches = []
    if quoted:
        matches.append(f"m.search_text @@ to_tsquery('simple', {params.add(' | '.join(quoted))})")
    if window is not None:
        matches.append(f"m.created_at >= {params.add(window[0])} "
                       f"AND m.created_at < {params.add(window[1])}")
    rows = await conn.fetch(
        f"SELECT m.message_id FROM messages m WHERE {where} "
        f"AND ({' OR '.join(f'({c})' for c in matches)}) "
        f"ORDER BY {rank} DESC, m.seq DESC LIMIT {params.add(limit)}", *params.values)
    return [r["message_id"] for r in rows]


EXACT_SCAN_MIN = 1_000      # vectors: a scope this small is always ranked exactly
EXACT_SCAN_FACTOR = 40      # ... and so is one of up to this times sqrt(vectors indexed)


def exact_scan_pays(scope_vectors: int, indexed_vectors: int) -> bool:
    """Whether ranking a scope's vectors exactly costs less than a filtered HNSW scan. The
    exact sort reads the scope (cost ~ its size); the iterative HNSW scan visits about
    limit x indexed / scope vectors before it has enough of the scope's, so the crossing
    grows with the square root of the index (bench/search.py, session and peer scope)."""
    return scope_vectors <= max(EXACT_SCAN_MIN, EXACT_SCAN_FACTOR * math.sqrt(indexed_vectors))


async def scope_vectors(conn: Conn, scope: Scope) -> tuple[int, int]:
    """(vectors in the scope, vectors in the HNSW index of every workspace), both from
    maintained statistics: counts of embedded messages, and the index's size estimate."""
    row = await conn.fetchrow(
        "SELECT (SELECT docs FROM search_stats WHERE workspace_id = $1) AS workspace, "
        "(SELECT docs FROM scope_stats WHERE workspace_id = $1 AND kind = 'session' "
        " AND scope_id = $2) AS session, "
        "(SELECT docs FROM scope_stats WHERE workspace_id = $1 AND kind = 'peer' "
        " AND scope_id = $3) AS peer, "
        "(SELECT reltuples::bigint FROM pg_class "
        " WHERE oid = 'message_embeddings_hnsw'::regclass) AS indexed",
        scope.workspace_id, scope.session_id, scope.peer_id)
    counts = [row["workspace"] or 0]
    if scope.session_id:
        counts.append(row["session"] or 0)
    if scope.peer_id:
        counts.append(row["peer"] or 0)
    # reltuples lags (it is -1 or 0 until the index is first vacuumed or analysed); the
    # index holds at least this workspace's vectors.
    return min(counts), max(row["indexed"] or 0, counts[0])


async def plan_vector_scan(conn: Conn, scope: Scope, limit: int) -> bool:
    """Choose the vector arm's plan for this transaction; True for the exact sort. The choice
    is ours, not the planner's: until autovacuum has analysed a freshly loaded table, the
    planner takes a workspace of 10k vectors for a few hundred and sorts them all (7 ms
    where the index takes 1.5). For the index path, sorts are disabled for the rest of the
    transaction (only the index gives the vector order without one; the search's other
    statements have no sortless alternative to lose) and the candidate list is widened when
    the connection's default (db/pool.py: HNSW_EF_SEARCH) is shorter than `limit`. Run it
    before the query's vector is needed: it then costs no time."""
    in_scope, indexed = await scope_vectors(conn, scope)
    if exact_scan_pays(in_scope, indexed):
        return True
    await conn.execute("SELECT set_config('enable_sort', 'off', true), "
                       "set_config('hnsw.ef_search', $1, true)",
                       str(max(limit, HNSW_EF_SEARCH)))
    return False


def vector_candidates_sql(scope: Scope, filters: Json | None, vector: str,
                          limit: int, exact: bool, params: f.Params) -> str:
    """The `limit` nearest messages of the scope (`vector`: the query vector's placeholder),
    by an exact sort of the scope's vectors or by the HNSW index, as plan_vector_scan chose."""
    # Filters name message columns: only then is the message row needed.
    join = ("JOIN messages m ON m.workspace_id = e.workspace_id AND m.message_id = e.message_id"
            if filters else "")
    where = scope_sql(scope, filters, params, alias="e")
    distance = f"e.embedding <=> {vector}::halfvec"
    if exact:
        distance = f"({distance}) + 0"  # not the index's ordering: the rows are sorted
    return (f"SELECT e.message_id FROM message_embeddings e {join} "
            f"WHERE {where} ORDER BY {distance} LIMIT {params.add(limit)}")


async def score_candidates(conn: Conn, scope: Scope, filters: Json | None,
                           vector: np.ndarray, text_ids: list[str], limit: int, exact: bool,
                           window: tuple[datetime, datetime] | None) -> list[Candidate]:
    """The vector arm's candidates and `text_ids`, and the messages either side of each in
    its session when they are in the scope, each with its indexed lexemes (for BM25, which
    the caller computes: in SQL, unnesting every candidate's lexemes cost 3-10 ms for a
    hundred candidates), its cosine similarity (NULL for messages not embedded yet) and
    whether it was created in `window`, in one statement: the vector arm is the last step to
    wait for the query's vector, and what follows it should cost no further round trip. No
    message rows: the caller fetches the few it keeps (decoding every candidate's row cost
    ~2 ms)."""
    params = f.Params()
    ws, q = params.add(scope.workspace_id), params.add(vector)
    extra = params.add(text_ids)
    in_window = (f"m.created_at >= {params.add(window[0])} AND m.created_at < "
                 f"{params.add(window[1])}" if window is not None else "false")
    nearest = vector_candidates_sql(scope, filters, q, limit, exact, params)
    in_scope = scope_sql(scope, filters, params)
    return every(Candidate, await conn.fetch(
        f"""
        WITH vec AS MATERIALIZED ({nearest}),
        ids AS (SELECT message_id FROM vec UNION SELECT unnest({extra}::text[])),
        found AS MATERIALIZED (
                 SELECT m.session_id, m.seq FROM messages m
                 WHERE m.workspace_id = {ws}
                   -- An array, so that the rows are looked up by key (as a join the
                   -- planner scanned the whole workspace: 2 ms at 10k).
                   AND m.message_id = ANY(ARRAY(SELECT message_id FROM ids))),
        -- The found messages and their neighbours in the session (by the unique key).
        keys AS (SELECT DISTINCT f.session_id, f.seq + d.d AS seq
                 FROM found f, (VALUES (-1), (0), (1)) AS d(d))
        SELECT m.message_id, m.session_id, m.peer_id, m.seq, m.search_text::text AS terms,
               length(m.search_text) AS length,
               1 - (e.embedding <=> {q}::halfvec) AS cosine, {in_window} AS in_window
        FROM keys k JOIN messages m ON m.workspace_id = {ws}
          AND m.session_id = k.session_id AND m.seq = k.seq
        LEFT JOIN message_embeddings e ON e.workspace_id = {ws} AND e.message_id = m.message_id
        WHERE {in_scope}
        """,
        *params.values))


def term_frequency(terms: str, lexeme: str) -> int:
    """How often `lexeme` occurs in a tsvector's text form ('a':1,4 'b':2B ...): the count of
    its positions; 0 when absent. A search for the quoted lexeme, not a parse of the whole
    vector (ten times faster for a hundred candidates)."""
    key = "'" + lexeme.replace("'", "''") + "'"
    at = terms.find(key)
    while at > 0 and terms[at - 1] != " ":  # inside another lexeme ("'x''y'" holds "'y'")
        at = terms.find(key, at + 1)
    if at < 0:
        return 0
    end = at + len(key)
    if end == len(terms) or terms[end] != ":":
        return 1  # a lexeme without positions counts once, as in PostgreSQL
    stop = terms.find(" ", end)
    return terms.count(",", end, stop if stop >= 0 else len(terms)) + 1


def bm25(terms: str, length: int, lexemes: list[QueryLexeme]) -> float:
    """Okapi BM25 (k1 1.2, b 0.75, lengths in distinct lexemes, as PostgreSQL's length() of
    a tsvector) of one message's indexed lexemes for the query's."""
    if not lexemes:
        return 0.0
    norm = K1 * (1 - B + B * length / lexemes[0].avgdl)
    score = 0.0
    for lx in lexemes:
        n = term_frequency(terms, lx.lexeme)
        if n:
            docs = max(lx.docs, 1)
            idf = math.log(1 + (docs - lx.ndoc + 0.5) / (lx.ndoc + 0.5))
            score += idf * n * (K1 + 1) / (n + norm)
    return score


async def messages_by_id(conn: Conn, workspace_id: str, ids: list[str]) -> dict[str, Message]:
    rows = await conn.fetch(f"SELECT {M_COLUMNS} FROM messages m WHERE m.workspace_id = $1 "
                            "AND m.message_id = ANY($2::text[])", workspace_id, ids)
    return {m.message_id: m for m in every(Message, rows)}
