"""Message writes in flight in this process, so that background work in the same process
(the embedding backlog's drain loops) can step aside for them: on a small machine a batch in
the model and its index inserts took the cores an acknowledgement was waiting for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

_in_flight = 0
_last_end = 0.0


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Around a message write (CreateMessages, an import, an upload)."""
    global _in_flight, _last_end
    _in_flight += 1
    try:
        yield
    finally:
        _in_flight -= 1
        _last_end = time.monotonic()


def busy(gap_seconds: float) -> bool:
    """A write is in flight, or one ended less than `gap_seconds` ago."""
    return _in_flight > 0 or time.monotonic() - _last_end < gap_seconds


async def step_aside(gap_seconds: float, at_most_seconds: float, poll_seconds: float = 0.005
                     ) -> None:
    """Wait until writes pause for `gap_seconds`, but never longer than `at_most_seconds`:
    under a steady stream of writes the caller still gets its turn (a bounded share, never
    starved)."""
    deadline = time.monotonic() + at_most_seconds
    while busy(gap_seconds) and time.monotonic() < deadline:
        await asyncio.sleep(poll_seconds)
