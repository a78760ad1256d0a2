"""The time a search query speaks of: "on 25 February 2022", "in July 2023", "October 13,
2023", "2023-05-01", "yesterday", "last week", "3 days ago". Search weighs messages whose
create_time falls in that window (domain/search.py): a message rarely repeats its own date,
which lives only in its create_time.

Absolute dates are read as written, as UTC days; relative ones count back from `now`. A
month or a day without a year, or a bare year, names no window: too loose to rank by."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

MONTHS = {name: i + 1 for i, name in enumerate((
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december"))}
MONTHS.update({name[:3]: n for name, n in list(MONTHS.items())})
MONTHS["sept"] = 9
_MONTH = r"(?P<{}>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{}>(?:19|20)\d\d)"

_PATTERNS = [  # most specific first
    ("iso", re.compile(r"\b(?P<y>(?:19|20)\d\d)-(?P<m>[01]\d)-(?P<d>[0-3]\d)\b")),
    ("day", re.compile(rf"\b{_DAY.format('d')}\s+(?:of\s+)?{_MONTH.format('m')},?\s+"
                       rf"{_YEAR.format('y')}\b")),
    ("day", re.compile(rf"\b{_MONTH.format('m')}\s+{_DAY.format('d')},?\s+"
                       rf"{_YEAR.format('y')}\b")),
    ("month", re.compile(rf"\b{_MONTH.format('m')},?\s+(?:of\s+)?{_YEAR.format('y')}\b")),
]
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_AGO = re.compile(r"\b(?P<n>\d+|a|an|one|two|three|four|five|six)\s+"
                  r"(?P<unit>day|week|month|year)s?\s+ago\b")
_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_LAST = re.compile(r"\b(?:last|past|previous)\s+(?P<unit>day|week|month|year)\b")


class Window(NamedTuple):
    """[start, end): the time the query speaks of."""

    start: datetime
    end: datetime


def window(query: str, now: datetime | None = None) -> Window | None:
    """The first time the query names, or None."""
    text = query.lower()
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            found = _absolute(kind, match)
            if found is not None:
                return found
    return _relative(text, now or datetime.now(UTC))


def _absolute(kind: str, match: re.Match[str]) -> Window | None:
    year = int(match["y"])
    month = int(match["m"]) if match["m"].isdigit() else MONTHS[match["m"]]
    try:
        if kind == "month":
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return Window(start, end)
        start = datetime(year, month, int(match["d"]), tzinfo=UTC)
    except ValueError:  # "31 February"
        return None
    # The day in UTC: the query carries no time zone, and a wider window would weigh the
    # days either side as much as the one named.
    return Window(start, start + timedelta(days=1))


def _relative(text: str, now: datetime) -> Window | None:
    if "yesterday" in text:
        return Window(now - timedelta(days=2), now)
    if "today" in text or "tonight" in text:
        return Window(now - timedelta(days=1), now + timedelta(hours=1))
    if match := _AGO.search(text):
        n = _WORDS.get(match["n"]) or int(match["n"])
        days = n * _UNITS[match["unit"]]
        slack = max(1.0, days * 0.25)  # "3 weeks ago" is not to the day
        centre = now - timedelta(days=days)
        return Window(centre - timedelta(days=slack), centre + timedelta(days=slack))
    if match := _LAST.search(text):
        return Window(now - timedelta(days=2 * _UNITS[match["unit"]]), now)
    return None
