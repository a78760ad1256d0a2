"""BM25 from a message's indexed lexemes (store/search.py bm25) against PostgreSQL's own
reading of the same tsvector: its lexemes, their counts and its length."""

from __future__ import annotations

import math

from honcho_grpc.db.pool import Database
from honcho_grpc.store.search import K1, B, QueryLexeme, bm25, term_frequency

TEXTS = ["The cats sat with other cats, cats everywhere", "It's Maya's cat: 'quoted' words",
         "Numbers 3.5 and v2 and well-known compounds", "cat cat cat"]


def test_term_frequency_finds_whole_lexemes_only() -> None:
    terms = "'a''cat':1 'at':2,5B 'cat':3,4,7 'dog'"
    assert term_frequency(terms, "cat") == 3
    assert term_frequency(terms, "a'cat") == 1
    assert term_frequency(terms, "at") == 2
    assert term_frequency(terms, "dog") == 1
    assert term_frequency(terms, "ca") == 0 and term_frequency(terms, "do") == 0


async def test_bm25_reads_the_tsvector_as_postgres_does(db: Database) -> None:
    for text in TEXTS:
        terms = await db.pool.fetchval(
            "SELECT (setweight(to_tsvector('simple', 'ann_lee'), 'B') "
            "|| to_tsvector('english', $1))::text", text)
        rows = await db.pool.fetch(
            "SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf, "
            "length(v) AS len FROM (SELECT setweight(to_tsvector('simple', 'ann_lee'), 'B') "
            "|| to_tsvector('english', $1) AS v) s, unnest(s.v) u", text)
        query = [QueryLexeme(r["lexeme"], ndoc=i + 1, docs=10, avgdl=4.0)
                 for i, r in enumerate(rows)]
        expected = sum(
            math.log(1 + (10 - q.ndoc + 0.5) / (q.ndoc + 0.5)) * r["tf"] * (K1 + 1)
            / (r["tf"] + K1 * (1 - B + B * r["len"] / 4.0))
            for q, r in zip(query, rows, strict=True))
        length = rows[0]["len"]
        assert math.isclose(bm25(terms, length, query), expected, rel_tol=1e-9), (text, terms)
        assert bm25(terms, length, [QueryLexeme("absent", 1, 10, 4.0)]) == 0.0
