"""Background work in the server steps aside for message writes, for a bounded time."""

from __future__ import annotations

import asyncio
import time

from honcho_grpc.domain import activity


async def test_step_aside_waits_for_a_pause_in_writes() -> None:
    async def write_for(seconds: float) -> None:
        with activity.writing():
            await asyncio.sleep(seconds)

    writer = asyncio.create_task(write_for(0.15))
    await asyncio.sleep(0.01)
    assert activity.busy(0.02)
    start = time.monotonic()
    await activity.step_aside(0.02, at_most_seconds=5.0)
    waited = time.monotonic() - start
    await writer
    assert 0.12 <= waited < 1.0  # until the write ended and the gap passed, not the bound


async def test_step_aside_never_waits_longer_than_its_bound() -> None:
    with activity.writing():  # a write that outlasts the bound (a steady stream)
        start = time.monotonic()
        await activity.step_aside(0.02, at_most_seconds=0.1)
        waited = time.monotonic() - start
    assert 0.09 <= waited < 0.5


async def test_no_write_no_wait() -> None:
    await asyncio.sleep(0.03)
    start = time.monotonic()
    await activity.step_aside(0.02, at_most_seconds=5.0)
    assert time.monotonic() - start < 0.05
