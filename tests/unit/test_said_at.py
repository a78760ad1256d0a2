"""When a derived fact was said (honcho_grpc/domain/derivation.py): the line of the second the
model copied that shares most words with the fact, each line's words taken once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from honcho_grpc.domain import derivation
from honcho_grpc.domain.derivation import Batch, line_times

SECOND = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)
STAMP = f"{SECOND:%Y-%m-%d %H:%M:%S}"


@dataclass
class Row:
    created_at: datetime
    content: str


def rows() -> list[Row]:
    """Fifty lines written within one second (as an import writes them), one a minute on."""
    same = [Row(SECOND + timedelta(microseconds=i), f"note {i} about the weather")
            for i in range(50)]
    same[17].content = "I adopted a puppy named Miso"
    return [*same, Row(SECOND + timedelta(minutes=1), "I adopted a cat")]


def batch(latest: datetime) -> Batch:
    return Batch([], [], latest.isoformat(), line_times(rows()))


def test_said_at_is_the_line_of_its_second_sharing_most_words() -> None:
    b = batch(SECOND + timedelta(minutes=1))
    assert b.said_at(STAMP, "alice adopted a puppy named Miso") == rows()[17].created_at
    # No word in common: the latest line of that second.
    assert b.said_at(STAMP, "alice is tall") == SECOND + timedelta(microseconds=49)
    late = f"{SECOND + timedelta(minutes=1):%Y-%m-%d %H:%M:%S}"
    assert b.said_at(f"  {late}.123 ", "alice adopted a cat") == SECOND + timedelta(minutes=1)
    # A stamp no line shows, or none at all: the batch's newest message.
    assert b.said_at("2020-01-01 00:00:00", "alice adopted a puppy") == b.latest_at
    assert b.said_at("", "alice adopted a puppy") == b.latest_at
    # Never after the batch's newest message.
    early = batch(SECOND)
    assert early.said_at(late, "alice adopted a cat") == SECOND


def test_each_line_s_words_are_taken_once(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    words = derivation._words

    def counting(text: str) -> frozenset[str]:
        taken.append(text)
        return words(text)

    monkeypatch.setattr(derivation, "_words", counting)
    b = batch(SECOND + timedelta(minutes=1))
    notes = [i for i in range(20) if i != 17]  # 17 is the puppy's line
    facts = [f"alice wrote note {i}" for i in notes]
    assert [b.said_at(STAMP, f) for f in facts] == \
        [SECOND + timedelta(microseconds=i) for i in notes]
    assert len(taken) == len(rows()) + len(facts)  # 51 lines, then each fact once
