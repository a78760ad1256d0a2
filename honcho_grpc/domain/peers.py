"""Peers: the users and agents of a workspace. What a peer holds about another (or itself)
is a peer card, kept by the worker or set by callers, and a representation, picked from
the conclusions the observer drew about the observed peer (domain/representation.py)."""

from __future__ import annotations

import asyncpg

from honcho_grpc.domain.idempotent import R, Retry, run_write
from honcho_grpc.domain.representation import RepresentationQuery, select_conclusions
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import not_found
from honcho_grpc.model import Conclusion, Json, Page, Peer, PeerCard, Session
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.store import Conn, Executor, memory, peers

# A card is short: what a prompt can carry about a peer at a glance.
MAX_CARD_ENTRIES = 40
MAX_CARD_ENTRY_CHARS = 200


async def require(db: Executor, workspace_id: str, *peer_ids: str) -> None:
    """NOT_FOUND naming the first of `peer_ids` that does not exist."""
    wanted = list(dict.fromkeys(peer_ids))
    found = await peers.existing_peers(db, workspace_id, wanted)
    for peer_id in wanted:
        if peer_id not in found:
            raise not_found("peer", workspaceId=workspace_id, peerId=peer_id)


async def get_or_create(pool: asyncpg.Pool, workspace_id: str, peer_id: str, metadata: Json,
                        configuration: Json) -> tuple[Peer, bool]:
    """Creates the workspace too when it is missing."""
    async with transaction(pool) as conn:
        return await peers.get_or_create_peer(conn, workspace_id, peer_id, metadata,
                                              configuration)


async def get(pool: asyncpg.Pool, workspace_id: str, peer_id: str) -> Peer:
    found = await peers.get_peer(pool, workspace_id, peer_id)
    if found is None:
        raise not_found("peer", workspaceId=workspace_id, peerId=peer_id)
    return found


async def list_peers(pool: asyncpg.Pool, workspace_id: str, filters: Json | None,
                     reverse: bool, page_size: int, token: str) -> Page[Peer]:
    return await peers.list_peers(pool, workspace_id, filters, reverse, page_size, token)


async def update(pool: asyncpg.Pool, workspace_id: str, peer_id: str, changes: Json) -> Peer:
    found = await peers.update_peer(pool, workspace_id, peer_id, changes)
    if found is None:
        raise not_found("peer", workspaceId=workspace_id, peerId=peer_id)
    return found


async def delete(pool: asyncpg.Pool, workspace_id: str, peer_id: str, retry: Retry[R]) -> R:
    """Its messages, memberships, cards, conclusions by or about it and queued work about it
    go with it."""
    async def write(conn: Conn) -> R:
        if not await peers.delete_peer(conn, workspace_id, peer_id):
            raise not_found("peer", workspaceId=workspace_id, peerId=peer_id)
        return retry.response_type()

    return await run_write(pool, workspace_id, retry, write)


async def sessions_of(pool: asyncpg.Pool, workspace_id: str, peer_id: str,
                      filters: Json | None, reverse: bool, page_size: int,
                      token: str) -> Page[Session]:
    """Sessions the peer is an active member of."""
    return await peers.list_peer_sessions(pool, workspace_id, peer_id, filters, reverse,
                                          page_size, token)


async def card(pool: asyncpg.Pool, workspace_id: str, observer_id: str,
               observed_id: str) -> PeerCard | None:
    """The observer's card about the observed peer; None when none was written yet."""
    await require(pool, workspace_id, observer_id, observed_id)
    return await memory.peer_card(pool, workspace_id, observer_id, observed_id)


async def set_card(pool: asyncpg.Pool, workspace_id: str, observer_id: str, observed_id: str,
                   entries: list[str]) -> PeerCard:
    async with transaction(pool) as conn:
        await require(conn, workspace_id, observer_id, observed_id)
        return await memory.set_peer_card(conn, workspace_id, observer_id, observed_id,
                                          entries)


async def representation(pool: asyncpg.Pool, embedder: Embedder,
                         q: RepresentationQuery) -> list[Conclusion]:
    """The conclusions that make up what the observer holds about the observed peer."""
    await require(pool, q.workspace_id, q.observer_id, q.observed_id)
    return await select_conclusions(pool, embedder, q)


async def context(pool: asyncpg.Pool, embedder: Embedder,
                  q: RepresentationQuery) -> tuple[list[Conclusion], PeerCard | None]:
    """The representation and the card together."""
    await require(pool, q.workspace_id, q.observer_id, q.observed_id)
    return (await select_conclusions(pool, embedder, q),
            await memory.peer_card(pool, q.workspace_id, q.observer_id, q.observed_id))
