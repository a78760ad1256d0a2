"""Honcho's page/size pagination over the domain's list functions: one page `size` rows long
starting `(page - 1) * size` rows in, and how many rows the list holds, each read from the
database once (a COUNT and an OFFSET page: store/pages.offset_window), never the whole list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from honcho_grpc.model import Page
from honcho_grpc.store.pages import offset_window

T = TypeVar("T")


async def numbered_page(page: int, size: int, fetch: Callable[[int, str], Awaitable[Page[T]]]
                        ) -> tuple[list[T], int]:
    """Page `page` (1-based) of `size` items from `fetch(page_size, page_token)`, and the
    list's total length."""
    with offset_window((page - 1) * size) as window:
        found = await fetch(size, "")
    return found.items, window.total
