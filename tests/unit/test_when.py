"""The time a query names (domain/when.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from honcho_grpc.domain.when import window

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


@pytest.mark.parametrize("query", [
    "What did Gina find on 1 February, 2023?", "what happened on February 1, 2023",
    "the 1st of Feb 2023", "log of 2023-02-01", "Feb. 1st 2023"])
def test_a_day_written_any_way(query: str) -> None:
    found = window(query, NOW)
    assert found is not None
    noon = datetime(2023, 2, 1, 12, tzinfo=UTC)
    assert found.start < noon < found.end and found.end - found.start <= timedelta(days=3)


def test_a_month() -> None:
    assert window("What did Mel paint in July 2023?", NOW) == (
        datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 8, 1, tzinfo=UTC))
    # A day that does not exist still names its month.
    assert window("on 31 February 2023", NOW) == (
        datetime(2023, 2, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC))
    assert window("in December 2023", NOW) == (
        datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(("query", "inside"), [
    ("what did I say yesterday", NOW - timedelta(days=1)),
    ("my plan from last week", NOW - timedelta(days=6)),
    ("three weeks ago, the trip", NOW - timedelta(days=21)),
    ("2 months ago", NOW - timedelta(days=61)),
])
def test_relative_times_count_back_from_now(query: str, inside: datetime) -> None:
    found = window(query, NOW)
    assert found is not None and found.start <= inside < found.end
    assert found.end <= NOW + timedelta(hours=1)


@pytest.mark.parametrize("query", [
    "When did Mel go camping in June?", "How many times in 2023?", "May I ask a question",
    "a march through the park", "what is 25 plus 2022"])
def test_no_window(query: str) -> None:
    assert window(query, NOW) is None
