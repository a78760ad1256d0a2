"""Honcho's get-or-create: POSTing a workspace, peer or session whose id exists returns it with
the metadata and configuration the request gave applied (replaced, as an update replaces
them); fields the request left out are kept. A new one is created with them. Creating and
applying happen in one transaction, so a concurrent caller sees one or the other whole.

The gRPC face's GetOrCreate* keep their contract (an existing resource comes back as it is:
changes go through Update*, with a FieldMask); the HTTP face answers as Honcho does.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from honcho_grpc.domain import scopes
from honcho_grpc.domain.sessions import check_observers
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.model import Json, Peer, PeerSettings, Session, Workspace
from honcho_grpc.settings import Settings
from honcho_grpc.store import members, peers, sessions, workspaces


def _initial(changes: Json) -> tuple[Json, Json]:
    return changes.get("metadata") or {}, changes.get("configuration") or {}


async def workspace(pool: asyncpg.Pool, workspace_id: str,
                    changes: Json) -> tuple[Workspace, bool]:
    """`changes`: the `metadata` / `configuration` the request gave (absent keys are kept)."""
    async with transaction(pool) as conn:
        found, created = await workspaces.get_or_create_workspace(conn, workspace_id,
                                                                  *_initial(changes))
        if not created and changes:
            found = await workspaces.update_workspace(conn, workspace_id, changes) or found
    return found, created


async def peer(pool: asyncpg.Pool, workspace_id: str, peer_id: str,
               changes: Json) -> tuple[Peer, bool]:
    """Creates the workspace too when it is missing."""
    async with transaction(pool) as conn:
        found, created = await peers.get_or_create_peer(conn, workspace_id, peer_id,
                                                        *_initial(changes))
        if not created and changes:
            found = await peers.update_peer(conn, workspace_id, peer_id, changes) or found
    return found, created


async def session(pool: asyncpg.Pool, settings: Settings, workspace_id: str, session_id: str,
                  changes: Json, joining: PeerSettings,
                  scope_ids: Sequence[str] = ()) -> tuple[Session, bool]:
    """Creates the workspace and the named peers too when missing; the peers join (the
    observer limit holds, as for AddPeers); the session joins `scope_ids` (created when
    missing). All of it or nothing."""
    async with transaction(pool) as conn:
        found, created = await sessions.get_or_create_session(conn, workspace_id, session_id,
                                                              *_initial(changes))
        if not created and changes:
            found = await sessions.update_session(conn, workspace_id, session_id,
                                                  changes) or found
        await members.add_peers(conn, workspace_id, session_id, joining)
        await check_observers(conn, settings, workspace_id, session_id)
        await scopes.join(conn, workspace_id, session_id, scope_ids)
    return found, created
