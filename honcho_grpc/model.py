"""Domain values: what the store returns and the domain and the faces (gRPC servicers, the
worker) pass around, instead of database rows.

A leaf module: it imports nothing from the service but the work-unit protocol, so the store,
the domain, the server and the worker can all import it.

What the store reads is an immutable NamedTuple: the store selects a value's columns in
field order and makes each row a value with `tuple.__new__` (honcho_grpc/store/rows.py), at C
speed. 100 message rows become values in 21 us that way, against 98 us as frozen dataclasses
(whose `__init__` sets each field through `object.__setattr__`), and 400 us for the page's
conversion to protobuf. What callers write and the domain completes before storing it
(NewMessage, NewConclusion) is a mutable dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from honcho_grpc.work_units import SummaryType

T = TypeVar("T")

ConclusionLevel = Literal["explicit", "deductive", "inductive", "contradiction"]
Vector = npt.NDArray[np.float32]
# A JSON object as stored (metadata, configuration): the jsonb column decoded.
Json = dict[str, Any]


class Workspace(NamedTuple):
    workspace_id: str
    metadata: Json
    configuration: Json
    created_at: datetime


class Peer(NamedTuple):
    workspace_id: str
    peer_id: str
    metadata: Json
    configuration: Json
    created_at: datetime


class Session(NamedTuple):
    workspace_id: str
    session_id: str
    active: bool
    metadata: Json
    configuration: Json
    created_at: datetime


class Scope(NamedTuple):
    """A named set of a workspace's sessions: reads made through it see only those sessions."""

    workspace_id: str
    scope_id: str
    metadata: Json
    created_at: datetime


class ScopeMember(NamedTuple):
    """A session's membership of a scope: when it joined, and how many explicit conclusions
    drawn in it the scope's reads now see."""

    session_id: str
    added_at: datetime
    conclusions: int


class SessionPeer(NamedTuple):
    """A peer's membership of a session. None settings inherit (observe_me from the peer's
    configuration, observe_others false)."""

    workspace_id: str
    session_id: str
    peer_id: str
    observe_me: bool | None
    observe_others: bool | None
    joined_at: datetime
    left_at: datetime | None

    @property
    def active(self) -> bool:
        return self.left_at is None


class Member(NamedTuple):
    """A member (current or past) with the effective settings that decide who observes whom
    when it writes or is written about."""

    peer_id: str
    active: bool
    observe_me: bool
    observe_others: bool


# peer_id -> (observe_me, observe_others) to set on joining; None keeps or inherits.
PeerSettings = dict[str, tuple[bool | None, bool | None]]


class Message(NamedTuple):
    """A stored message as reads show it (its configuration and internal metadata are only
    needed while it is written)."""

    workspace_id: str
    message_id: str
    session_id: str
    peer_id: str
    seq: int
    content: str
    metadata: Json
    token_count: int
    created_at: datetime


class OpenBatch(NamedTuple):
    """A batch of new messages about to be stored: its first sequence number, what decides
    its background work (both configurations, every member's observation settings) and the
    transaction's time (what a message without a time of its own is stamped with)."""

    first_seq: int
    session_configuration: Json
    workspace_configuration: Json | None
    members: list[Member]
    written_at: datetime


class MessageDraft(NamedTuple):
    """A message as a caller gives it; the domain gives it an id and counts its tokens."""

    peer_id: str
    content: str
    metadata: Json
    configuration: Json
    created_at: datetime | None


@dataclass(slots=True)
class NewMessage:
    """A message to store; its sequence number is taken when it is written."""

    message_id: str
    peer_id: str
    content: str
    metadata: Json
    configuration: Json
    token_count: int
    created_at: datetime | None
    internal_metadata: Json | None = None


class Conclusion(NamedTuple):
    workspace_id: str
    conclusion_id: str
    observer_id: str
    observed_id: str
    session_id: str | None
    content: str
    level: ConclusionLevel
    premise_ids: list[str]
    source_message_ids: list[str]
    times_derived: int
    internal_metadata: Json
    created_at: datetime
    invalidated_at: datetime | None
    superseded_by: str | None

    @property
    def valid(self) -> bool:
        return self.invalidated_at is None


class ConclusionDraft(NamedTuple):
    """A conclusion as a caller states it (explicit, without premises or sources)."""

    observer_id: str
    observed_id: str
    session_id: str | None
    content: str


@dataclass(slots=True)
class NewConclusion:
    conclusion_id: str
    observer_id: str
    observed_id: str
    session_id: str | None
    content: str
    embedding: Vector | None
    model: str | None
    level: ConclusionLevel = "explicit"
    premise_ids: list[str] = field(default_factory=list)
    source_message_ids: list[str] = field(default_factory=list)
    internal_metadata: Json = field(default_factory=dict)
    # When what it says was said: the source message's time for a derived conclusion (the
    # latest premise's for a dream's), so an imported, back-dated conversation is dated by its
    # messages. None: now.
    created_at: datetime | None = None


class Summary(NamedTuple):
    workspace_id: str
    session_id: str
    summary_type: SummaryType
    content: str
    last_message_id: str
    last_message_seq: int
    token_count: int
    created_at: datetime


class PeerCard(NamedTuple):
    """What an observer keeps about an observed peer (itself included), one entry a line."""

    workspace_id: str
    observer_id: str
    observed_id: str
    entries: list[str]
    updated_at: datetime


class WebhookEndpoint(NamedTuple):
    workspace_id: str
    endpoint_id: str
    url: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the token of the next ("" at the end)."""

    items: list[T]
    next_token: str


class MessageRef(NamedTuple):
    """A stored message as its announcement (messages.created) names it."""

    seq: int
    peer_id: str
    message_id: str


@dataclass
class Fact:
    """An explicit fact the model extracted, with the timestamp of the line it came from as
    the model copied it ("" or anything else: unknown, the batch's time is used), and whom
    it is about (one of the participants the extraction was asked about)."""

    content: str
    said_at: str = ""
    about: str = ""
