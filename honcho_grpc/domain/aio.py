"""Running independent reads at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
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
