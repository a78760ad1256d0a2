"""Running independent reads at once; reading a stream ahead of its consumer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def all_of(*reads: Awaitable[Any]) -> list[Any]:
    """Await every read concurrently (each takes its own pooled connection); raise the first
    failure, in argument order, only once all have finished, so that none is left running
    against a connection nobody waits for."""
    results = await asyncio.gather(*reads, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def nothing() -> None:
    """A read that is skipped (keeps the positions of `all_of`'s results)."""
    return None


async def read_ahead(source: AsyncIterator[T], depth: int) -> AsyncIterator[T]:
    """`source`'s items, produced up to `depth` ahead by a background task: the producer's
    work (reading and validating the next chunk of a stream) overlaps the consumer's waits
    (writing the previous one). A producer error arrives, in order, after its items."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put((True, item))
        except Exception as exc:  # handed to the consumer; cancellation just ends the pump
            await queue.put((False, exc))
        else:
            await queue.put((False, None))

    task = asyncio.create_task(pump())
    try:
        while True:
            ok, item = await queue.get()
            if ok:
                yield item
            elif item is None:
                return
            else:
                raise item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
