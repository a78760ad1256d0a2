"""Peer cards the worker keeps: short lists of durable facts an observer holds about a peer
(itself included). A derived card is stored, and announced, only when it changed."""

from __future__ import annotations

import asyncpg

from honcho_grpc.domain.events import PEER_CARD_UPDATED
from honcho_grpc.store import events, memory


async def cards(conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str,
                observers: list[str], observed_id: str) -> dict[str, list[str] | None]:
    """Each observer's current card about `observed_id` (None: it has none)."""
    found = {o: await memory.peer_card(conn, workspace_id, o, observed_id) for o in observers}
    return {o: list(card.entries) if card else None for o, card in found.items()}


async def save_derived(conn: asyncpg.Connection, workspace_id: str, observer_id: str,
                       observed_id: str, entries: list[str], old: list[str] | None) -> bool:
    """Store a card the worker derived and tell watchers, unless it is empty or unchanged
    from `old` (the card the derivation started from). True if stored."""
    if not entries or entries == (old or []):
        if old:  # refreshed, and still right: the next refresh counts from now
            await memory.touch_peer_card(conn, workspace_id, observer_id, observed_id)
        return False
    await memory.set_peer_card(conn, workspace_id, observer_id, observed_id, entries)
    await events.emit(conn, PEER_CARD_UPDATED, workspace_id, peer_id=observed_id,
                      peers=[observer_id], data={"observer_id": observer_id,
                                                 "observed_id": observed_id,
                                                 "entries": len(entries)})
    return True
