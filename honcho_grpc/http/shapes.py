"""Domain values (honcho_grpc/model.py) as Honcho's JSON objects, and request bodies in as
Honcho's SDKs send them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from honcho_grpc import model

Json = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def workspace(w: model.Workspace) -> Json:
    return {"id": w.workspace_id, "metadata": w.metadata or {},
            "configuration": w.configuration or {}, "created_at": iso(w.created_at)}


def peer(p: model.Peer) -> Json:
    return {"id": p.peer_id, "workspace_id": p.workspace_id, "created_at": iso(p.created_at),
            "metadata": p.metadata or {}, "configuration": p.configuration or {}}


def session(s: model.Session) -> Json:
    return {"id": s.session_id, "is_active": s.active, "workspace_id": s.workspace_id,
            "metadata": s.metadata or {}, "configuration": s.configuration or {},
            "created_at": iso(s.created_at)}


def message(m: model.Message) -> Json:
    return {"id": m.message_id, "content": m.content, "peer_id": m.peer_id,
            "session_id": m.session_id, "metadata": m.metadata or {},
            "created_at": iso(m.created_at), "workspace_id": m.workspace_id,
            "token_count": m.token_count}


def conclusion(c: model.Conclusion) -> Json:
    return {"id": c.conclusion_id, "content": c.content, "observer_id": c.observer_id,
            "observed_id": c.observed_id, "session_id": c.session_id, "level": c.level,
            "source_ids": c.premise_ids, "times_derived": c.times_derived,
            "created_at": iso(c.created_at)}


def summary(s: model.Summary | None) -> Json | None:
    if s is None:
        return None
    return {"content": s.content, "message_id": s.last_message_id,
            "summary_type": s.summary_type, "created_at": iso(s.created_at),
            "token_count": s.token_count}


def scope(s: model.Scope) -> Json:
    return {"id": s.scope_id, "workspace_id": s.workspace_id, "metadata": s.metadata or {},
            "created_at": iso(s.created_at)}


def scope_status(members: list[model.ScopeMember]) -> Json:
    """Honcho's `{backfill_status: {session: {state, updated_at, docs_copied}}}`. Honcho copies
    a joining session's conclusions into the scope in the background; here the boundary is
    applied when reading, so every member is settled from the moment it joins: `completed`
    at its joining time, `docs_copied` the explicit conclusions the scope's reads see of it."""
    return {"backfill_status": {
        m.session_id: {"state": "completed", "updated_at": iso(m.added_at),
                       "docs_copied": m.conclusions} for m in members}}


def member_config(m: model.SessionPeer) -> Json:
    return {"observe_me": m.observe_me, "observe_others": m.observe_others}


def webhook(e: model.WebhookEndpoint) -> Json:
    return {"id": e.endpoint_id, "workspace_id": e.workspace_id, "url": e.url,
            "created_at": iso(e.created_at)}


# --- request bodies --------------------------------------------------------------------------
# Field shapes as Honcho's server declares them: unknown fields are refused (422), so a
# capability this server lacks (evidence) is refused the way Honcho refuses an unknown field
# rather than silently ignored.

class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateWithId(Body):
    id: str = Field(min_length=1, max_length=512)
    metadata: Json | None = None
    configuration: Json | None = None


class SessionPeerConfig(Body):
    observe_me: bool | None = None
    observe_others: bool | None = None


class CreateSession(CreateWithId):
    peers: dict[str, SessionPeerConfig] | None = None
    scopes: list[str] | None = None


class CreateScope(Body):
    id: str = Field(min_length=1, max_length=512)
    metadata: Json | None = None


class ScopeSessions(Body):
    session_ids: list[str]


class Update(Body):
    metadata: Json | None = None
    configuration: Json | None = None


class ListBody(Body):
    filters: Json | None = None


class SearchBody(Body):
    query: str
    filters: Json | None = None
    limit: int = Field(default=10, ge=1, le=100)
    scope: str | None = None


class MessageIn(Body):
    content: str
    peer_id: str
    metadata: Json | None = None
    configuration: Json | None = None
    created_at: datetime | None = None


class CreateMessages(Body):
    messages: list[MessageIn] = Field(min_length=1, max_length=100)


class MessageUpdate(Body):
    metadata: Json | None = None


class ChatBody(Body):
    query: str = Field(min_length=1, max_length=10_000)
    stream: bool = False
    target: str | None = None
    session_id: str | None = None
    reasoning_level: Literal["minimal", "low", "medium", "high", "max"] = "low"
    response_format: Json | None = None
    filters: Json | None = None           # a session allowlist only (common.allowlist)
    scope: str | list[str] | None = None


class RepresentationBody(Body):
    session_id: str | None = None
    target: str | None = None
    search_query: str | None = None
    search_top_k: int | None = Field(default=None, ge=1, le=100)
    search_max_distance: float | None = Field(default=None, ge=0.0, le=1.0)
    include_most_frequent: bool | None = None
    max_conclusions: int | None = Field(default=25, ge=1, le=100)
    filters: Json | None = None           # a session allowlist only (common.allowlist)
    scope: str | list[str] | None = None


class CardBody(Body):
    peer_card: list[str]


class ConclusionIn(Body):
    content: str = Field(min_length=1, max_length=65_535)
    observer_id: str
    observed_id: str
    session_id: str | None = None


class CreateConclusions(Body):
    conclusions: list[ConclusionIn] = Field(min_length=1, max_length=100)


class ConclusionQuery(Body):
    query: str
    top_k: int = Field(default=10, ge=1, le=100)
    distance: float | None = Field(default=None, ge=0.0, le=1.0)
    filters: Json | None = None


class DreamBody(Body):
    observer: str
    observed: str | None = None
    dream_type: Literal["omni", "card_refresh"] = "omni"
    session_id: str | None = None
    rebuild: bool = False


class WebhookBody(Body):
    url: str
