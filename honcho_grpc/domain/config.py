"""The configuration hierarchy: message > session > workspace > server settings.

Stored configurations are the JSON form of the `Configuration` proto (unset fields absent),
so a deep merge that ignores missing keys gives the effective value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from honcho_grpc.settings import Settings
from honcho_grpc.store import sessions, workspaces


def _get(config: dict[str, Any] | None, section: str, key: str) -> Any:
    if not config:
        return None
    value = config.get(section)
    return value.get(key) if isinstance(value, dict) else None


def resolve(key: tuple[str, str], *levels: dict[str, Any] | None, default: Any) -> Any:
    """First level (most specific first) that sets `section.key`, else the default."""
    for config in levels:
        value = _get(config, *key)
        if value is not None:
            return value
    return default


@dataclass(frozen=True)
class Effective:
    """The settings that matter when a message is written."""

    reasoning_enabled: bool
    custom_instructions: str
    summary_enabled: bool
    short_every: int
    long_every: int


def effective(settings: Settings, workspace: dict[str, Any] | None,
              session: dict[str, Any] | None, message: dict[str, Any] | None) -> Effective:
    chain = (message, session, workspace)
    return Effective(
        reasoning_enabled=bool(resolve(("reasoning", "enabled"), *chain, default=True)),
        custom_instructions=str(resolve(("reasoning", "custom_instructions"), *chain,
                                        default="")),
        summary_enabled=bool(resolve(("summary", "enabled"), session, workspace,
                                     default=settings.summary.enabled)),
        short_every=int(resolve(("summary", "messages_per_short_summary"), session, workspace,
                                default=settings.summary.messages_per_short_summary)),
        long_every=int(resolve(("summary", "messages_per_long_summary"), session, workspace,
                               default=settings.summary.messages_per_long_summary)),
    )


@dataclass(frozen=True)
class Features:
    """The settings a background task needs, resolved session > workspace > server."""

    peer_card_create: bool
    dream_enabled: bool


def features(settings: Settings, workspace: dict[str, Any] | None,
             session: dict[str, Any] | None) -> Features:
    chain = (session, workspace)
    return Features(
        peer_card_create=bool(resolve(("peer_card", "create"), *chain,
                                      default=settings.peer_card.create)),
        dream_enabled=bool(resolve(("dream", "enabled"), *chain,
                                   default=settings.dream.enabled)),
    )


async def read_features(conn: asyncpg.Connection | asyncpg.Pool, settings: Settings,
                        workspace_id: str, session_id: str | None) -> Features:
    """`features` of a workspace (and a session of it), as stored now."""
    workspace = await workspaces.get_workspace(conn, workspace_id)
    session = await sessions.get_session(conn, workspace_id, session_id) \
        if session_id else None
    return features(settings, workspace.configuration if workspace else None,
                    session.configuration if session else None)
