"""providers/lexemes.py reads words as search does: its lexemes are those PostgreSQL's
`english` configuration gives the same text, checked against the real database."""

from __future__ import annotations

import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.lexemes import STOP_WORDS, lexemes, stem

PROSE = [
    "Hi! I'm Maya, I just moved to Lisbon for a job at a robotics startup.",
    "I am learning Portuguese every morning before work.",
    "I run three times a week, but my left knee hurts after long runs.",
    "Not yet. I prefer to avoid doctors, honestly.",
    "I read science fiction; my favourite author is Ursula K. Le Guin.",
    "My sister lives in Porto, I visit her once a month by train.",
    "It is! Work is intense though, I often stay late on Wednesdays.",
    "The clinic opened in 2019 and it costs 3.5 euros per visit on weekdays.",
    "We organized a half-marathon for the university's international students.",
    "She's been hiking, hikes daily and hiked the Alps; the hiker's boots are new.",
    "Every evening they're cooking spicy noodles with my 7-year-old niece.",
    "Café owners in Zürich don't serve naïve tourists anything but coffee.",
    "Emergency meetings about organic gardening happened yesterday at 10am.",
]


async def test_lexemes_are_those_postgresql_indexes(db: Database) -> None:
    rows = await db.pool.fetch(
        "SELECT t, array(SELECT lexeme FROM unnest(to_tsvector('english', t))) AS lexemes "
        "FROM unnest($1::text[]) t", PROSE)
    for row in rows:
        assert set(lexemes(row["t"])) == set(row["lexemes"]), row["t"]


# Words whose stems changed between Snowball releases: with snowballstemmer 3 the first
# group would no longer meet PostgreSQL's stems.
VOCABULARY = ["evening", "evenings", "university", "universal", "organized", "organization",
              "international", "emergency", "generous", "communication", "arsenal", "hopping",
              "hoped", "running", "skies", "dying", "news", "cycling", "happily", "fluently"]


async def test_stems_and_stop_words_are_postgresqls(db: Database) -> None:
    rows = await db.pool.fetch("SELECT w, ts_lexize('english_stem', w) AS l "
                               "FROM unnest($1::text[]) w", [*VOCABULARY, *STOP_WORDS])
    for row in rows:
        expected = list(row["l"])
        assert ([] if row["w"] in STOP_WORDS else [stem(row["w"])]) == expected, row["w"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Running, runs, ran!", ["run", "run", "ran"]),
    ("half-marathon", ["half-marathon", "half", "marathon"]),
    ("maya's B2B deal: 3.5 km", ["maya", "b2b", "deal", "3.5", "km"]),
    ("the and of", []),
])
def test_tokens_in_order_with_repeats(text: str, expected: list[str]) -> None:
    assert lexemes(text) == expected
