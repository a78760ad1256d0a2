"""Sessions: conversations between peers, and who takes part in them.

Membership rules live here: peers join by name (created when missing), leave by removal,
and a session has at most `APP_SESSION_OBSERVERS_LIMIT` active members that observe the
others (`observe_others`): each observer multiplies the reasoning every message causes.
A clone copies a session's settings, members and messages (up to one), not what was derived
from them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import asyncpg
import grpc

from honcho_grpc.domain import scopes
from honcho_grpc.domain.idempotent import R, Retry, run_write
from honcho_grpc.domain.message_events import announce_created
from honcho_grpc.domain.transactions import connection, transaction
from honcho_grpc.errors import HonchoError, already_exists, not_found
from honcho_grpc.ids import new_id
from honcho_grpc.model import Json, Page, PeerSettings, Session, SessionPeer, Summary
from honcho_grpc.settings import Settings
from honcho_grpc.store import Conn, Executor, backlog, members, memory, sessions
from honcho_grpc.store import messages as message_store


async def check_observers(conn: Conn, settings: Settings, workspace_id: str,
                          session_id: str) -> None:
    """FAILED_PRECONDITION when more active members observe others than the limit allows.
    Run after a change, in its transaction: the change is then rolled back."""
    limit = settings.app.session_observers_limit
    if await members.count_observers(conn, workspace_id, session_id) > limit:
        raise HonchoError(
            message=f"at most {limit} members may have observe_others in a session",
            reason="OBSERVER_LIMIT_EXCEEDED", metadata={"limit": str(limit)},
            code=grpc.StatusCode.FAILED_PRECONDITION)


async def require(db: Executor, workspace_id: str, session_id: str) -> Session:
    """The session, or NOT_FOUND."""
    found = await sessions.get_session(db, workspace_id, session_id)
    if found is None:
        raise not_found("session", workspaceId=workspace_id, sessionId=session_id)
    return found


async def get_or_create(pool: asyncpg.Pool, settings: Settings, workspace_id: str,
                        session_id: str, metadata: Json, configuration: Json,
                        peers: PeerSettings, scope_ids: Sequence[str] = ()
                        ) -> tuple[Session, bool]:
    """Creates the workspace and the named peers too when missing; the peers join; the
    session joins `scope_ids` (created when missing). All of it or nothing."""
    async with transaction(pool) as conn:
        found, created = await sessions.get_or_create_session(conn, workspace_id, session_id,
                                                              metadata, configuration)
        await members.add_peers(conn, workspace_id, session_id, peers)
        await check_observers(conn, settings, workspace_id, session_id)
        await scopes.join(conn, workspace_id, session_id, scope_ids)
    return found, created


async def list_sessions(pool: asyncpg.Pool, workspace_id: str, filters: Json | None,
                        reverse: bool, page_size: int, token: str) -> Page[Session]:
    return await sessions.list_sessions(pool, workspace_id, filters, reverse, page_size, token)


async def update(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                 changes: Json) -> Session:
    found = await sessions.update_session(pool, workspace_id, session_id, changes)
    if found is None:
        raise not_found("session", workspaceId=workspace_id, sessionId=session_id)
    return found


async def delete(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                 retry: Retry[R]) -> R:
    """Its messages, memberships, summaries, queued work and the conclusions derived in it
    (and those built on them) go with it."""
    async def write(conn: Conn) -> R:
        if not await sessions.delete_session(conn, workspace_id, session_id):
            raise not_found("session", workspaceId=workspace_id, sessionId=session_id)
        return retry.response_type()

    return await run_write(pool, workspace_id, retry, write)


async def clone(pool: asyncpg.Pool, workspace_id: str, source_id: str, target_id: str,
                up_to_message_id: str, retry: Retry[R],
                respond: Callable[[Session], R]) -> R:
    """Copy metadata, configuration, members and messages (up to `up_to_message_id`,
    inclusive, when given) into a new session. Derived memory is not copied; the copies join
    the embedding backlog but cause no reasoning."""
    async def write(conn: Conn) -> R:
        return respond(await _clone(conn, workspace_id, source_id, target_id,
                                    up_to_message_id))

    return await run_write(pool, workspace_id, retry, write)


async def _clone(conn: Conn, workspace_id: str, source_id: str, target_id: str,
                 up_to_message_id: str) -> Session:
    await require(conn, workspace_id, source_id)
    cutoff = None
    if up_to_message_id:
        cutoff = await message_store.message_seq(conn, workspace_id, source_id,
                                                 up_to_message_id)
        if cutoff is None:
            raise not_found("message", workspaceId=workspace_id, sessionId=source_id,
                            messageId=up_to_message_id)
    if await sessions.copy_session(conn, workspace_id, source_id, target_id) is None:
        raise already_exists("session", workspaceId=workspace_id, sessionId=target_id)
    await members.copy_members(conn, workspace_id, source_id, target_id)
    # One prefix per clone and the sequence number after it: ids unique and in order.
    copied = await message_store.copy_session_messages(conn, workspace_id, source_id,
                                                       target_id, new_id()[:10], cutoff)
    clone_ = await sessions.set_last_seq(conn, workspace_id, target_id,
                                         max((c.seq for c in copied), default=0))
    await backlog.add(conn, workspace_id, [c.message_id for c in copied])
    await announce_created(conn, workspace_id, target_id, copied)
    return clone_


async def add_peers(pool: asyncpg.Pool, settings: Settings, workspace_id: str,
                    session_id: str, peers: PeerSettings) -> list[SessionPeer]:
    """Join (or re-join) peers, creating them when missing; returns the active members."""
    async with transaction(pool) as conn:
        await require(conn, workspace_id, session_id)
        await members.add_peers(conn, workspace_id, session_id, peers)
        await check_observers(conn, settings, workspace_id, session_id)
        return await members.active_members(conn, workspace_id, session_id)


async def set_peers(pool: asyncpg.Pool, settings: Settings, workspace_id: str,
                    session_id: str, peers: PeerSettings) -> list[SessionPeer]:
    """Make the active members exactly `peers`; returns them."""
    async with transaction(pool) as conn:
        await require(conn, workspace_id, session_id)
        await members.set_peers(conn, workspace_id, session_id, peers)
        await check_observers(conn, settings, workspace_id, session_id)
        return await members.active_members(conn, workspace_id, session_id)


async def remove_peers(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                       peer_ids: list[str]) -> list[SessionPeer]:
    """The peers leave (their past stays); returns the remaining active members."""
    async with transaction(pool) as conn:
        await require(conn, workspace_id, session_id)
        await members.remove_peers(conn, workspace_id, session_id, peer_ids)
        return await members.active_members(conn, workspace_id, session_id)


async def list_members(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                       include_inactive: bool, page_size: int,
                       token: str) -> Page[SessionPeer]:
    await require(pool, workspace_id, session_id)
    return await members.list_members(pool, workspace_id, session_id, include_inactive,
                                      page_size, token)


async def member(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                 peer_id: str) -> SessionPeer:
    found = await members.get_member(pool, workspace_id, session_id, peer_id)
    if found is None:
        raise not_found("session_peer", workspaceId=workspace_id, sessionId=session_id,
                        peerId=peer_id)
    return found


async def configure_member(pool: asyncpg.Pool, settings: Settings, workspace_id: str,
                           session_id: str, peer_id: str, observe_me: bool | None,
                           observe_others: bool | None) -> SessionPeer:
    """Change a member's observation settings (None keeps one)."""
    async with transaction(pool) as conn:
        found = await members.set_member_config(conn, workspace_id, session_id, peer_id,
                                                observe_me, observe_others)
        if found is None:
            raise not_found("session_peer", workspaceId=workspace_id, sessionId=session_id,
                            peerId=peer_id)
        await check_observers(conn, settings, workspace_id, session_id)
        return found


async def summaries(pool: asyncpg.Pool, workspace_id: str,
                    session_id: str) -> dict[str, Summary]:
    """The session's summaries by type ("short", "long"); absent until written."""
    async with connection(pool) as conn:
        await require(conn, workspace_id, session_id)
        return await memory.summaries(conn, workspace_id, session_id)


async def peer_is_member(pool: asyncpg.Pool, workspace_id: str, peer_id: str,
                         session_ids: Collection[str]) -> bool:
    """Whether the peer is an active member of every one of `session_ids`. A session that
    does not exist has no members."""
    wanted = sorted(session_ids)
    return await members.count_memberships(pool, workspace_id, peer_id, wanted) == len(wanted)
