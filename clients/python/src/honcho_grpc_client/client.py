"""Synchronous client.

    from honcho_grpc_client import Honcho

    honcho = Honcho(address="localhost:50051", workspace_id="my-app")
    alice, tutor = honcho.peer("alice"), honcho.peer("tutor")
    session = honcho.session("session-1")
    session.add_messages([alice.message("I'm stuck on fractions"), tutor.message("Let's see")])
    print(alice.chat("What does alice struggle with?"))
    for delta in alice.chat("And what helps?", stream=True):
        print(delta, end="", flush=True)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, overload

import grpc
from honcho_grpc_proto.v1 import resources_pb2, scope_pb2

from honcho_grpc_client._base import (
    DEFAULT_STREAM_TIMEOUT,
    DEFAULT_TIMEOUT,
    PAGE_SIZE,
    STUBS,
    ClientStream,
    HonchoOps,
    Paged,
    PeerOps,
    RetryPolicy,
    ScopeOps,
    ServerStream,
    SessionOps,
    Settings,
    Unary,
    _id,
    conclusion_inputs,
    read_file_arg,
    resource_fields,
    session_and_target,
)
from honcho_grpc_client.errors import from_rpc_error
from honcho_grpc_client.types import (
    ChatAnswer,
    ChatCompletion,
    Conclusion,
    ConclusionCreate,
    Event,
    Message,
    MessageCreate,
    PeerContext,
    QueueStatus,
    ScopeMember,
    SessionContext,
    SessionMember,
    SessionPeerConfig,
    Summaries,
    WebhookEndpoint,
    struct_to_dict,
    to_datetime,
)

_UNSET: Any = object()


class _Transport:
    """One channel, its stubs, and the call conventions (deadline, auth, typed errors)."""

    def __init__(self, settings: Settings, channel: grpc.Channel | None) -> None:
        self.settings = settings
        self._owns_channel = channel is None
        if channel is None:
            creds = settings.credentials()
            channel = (grpc.secure_channel(settings.address, creds, options=settings.options)
                       if creds else
                       grpc.insecure_channel(settings.address, options=settings.options))
        self.channel = channel
        self.stubs = {name: make(channel) for name, make in STUBS.items()}
        self.metadata = settings.metadata()

    def _method(self, service: str, method: str) -> Any:
        return getattr(self.stubs[service], method)

    def unary(self, op: Unary, timeout: float | None = _UNSET) -> Any:
        timeout = self.settings.timeout if timeout is _UNSET else timeout
        try:
            response = self._method(op.service, op.method)(op.request, timeout=timeout,
                                                            metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return op.read(response)

    def pages(self, op: Paged) -> Iterator[Any]:
        request = op.request
        while True:
            response = self.unary(Unary(op.service, op.method, request))
            yield from op.items(response)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def server_stream(self, op: ServerStream, timeout: float | None) -> Iterator[Any]:
        call = self._method(op.service, op.method)(op.request, timeout=timeout,
                                                    metadata=self.metadata)
        try:
            for item in call:
                yield op.read(item)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()  # a no-op when the stream ended; stops server work when abandoned

    def client_stream(self, op: ClientStream, timeout: float | None) -> Any:
        try:
            response = self._method(op.service, op.method)(iter(op.requests), timeout=timeout,
                                                            metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return op.read(response)

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()


class ChatStream:
    """A streamed dialectic answer: iterate for text deltas; afterwards `completion` holds
    the finish reason, token usage and the conclusions used, and `text` the whole answer.
    `cancel()` (or leaving a `with` block) stops the server's work."""

    def __init__(self, events: Iterator[Any]) -> None:
        self._events = events
        self.completion: ChatCompletion | None = None
        self._parts: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if event.HasField("delta"):
                self._parts.append(event.delta.content)
                yield event.delta.content
            elif event.HasField("completion"):
                self.completion = ChatCompletion.from_proto(event.completion)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def read(self) -> str:
        """Consume the rest of the stream and return the whole answer."""
        for _ in self:
            pass
        return self.text

    def cancel(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class EventStream:
    """A live feed of events: iterate to receive them; `ready()` returns once the server
    listens (nothing committed afterwards is missed); `close()` (or leaving `with`) stops."""

    def __init__(self, transport: _Transport, op: ServerStream) -> None:
        self._t = transport
        self._op = op
        self._call: Any = None

    def _start(self) -> Any:
        if self._call is None:
            self._call = self._t._method(self._op.service, self._op.method)(
                self._op.request, timeout=None, metadata=self._t.metadata)
        return self._call

    def ready(self) -> EventStream:
        """Block until the subscription is live (or the call failed: iterating raises)."""
        self._start().initial_metadata()
        return self

    def __iter__(self) -> Iterator[Event]:
        call = self._start()
        try:
            for item in call:
                yield self._op.read(item)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and call.cancelled():
                return  # closed by us
            raise from_rpc_error(e) from e

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Peer(PeerOps):
    """A handle on a peer. Creating the handle does no I/O; the peer is created on first use
    by a write that names it (messages, session membership) or by `get_or_create()`."""

    def __init__(self, honcho: Honcho, peer_id: str,
                 resource: resources_pb2.Peer | None = None) -> None:
        self._honcho = honcho
        self._t = honcho._transport
        self.id = peer_id
        self.workspace_id = honcho.workspace_id
        self.metadata: dict[str, Any] | None = None
        self.configuration: dict[str, Any] | None = None
        self.created_at: dt.datetime | None = None
        if resource is not None:
            self._load(resource)

    def _load(self, resource: resources_pb2.Peer) -> Peer:
        self.metadata, self.configuration = resource_fields(resource)
        self.created_at = to_datetime(resource.create_time, resource.HasField("create_time"))
        return self

    def __repr__(self) -> str:
        return f"Peer(id={self.id!r}, workspace_id={self.workspace_id!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Peer) and other.id == self.id
                and other.workspace_id == self.workspace_id)

    def __hash__(self) -> int:
        return hash(("peer", self.workspace_id, self.id))

    def get_or_create(self, *, metadata: Mapping[str, Any] | None = None,
                      configuration: Mapping[str, Any] | None = None) -> Peer:
        """Create the peer if missing (metadata/configuration apply only then)."""
        return self._load(self._t.unary(self._get_or_create(metadata, configuration)))

    def refresh(self) -> Peer:
        """Reload metadata and configuration (NotFoundError if the peer does not exist)."""
        return self._load(self._t.unary(self._get()))

    def get_metadata(self) -> dict[str, Any]:
        self.refresh()
        return dict(self.metadata or {})

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace the peer's metadata (creating the peer if needed)."""
        self.get_or_create()
        self._load(self._t.unary(self._update(metadata, None)))

    def get_configuration(self) -> dict[str, Any]:
        self.refresh()
        return dict(self.configuration or {})

    def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        """e.g. `{"observe_me": False}`."""
        self.get_or_create()
        self._load(self._t.unary(self._update(None, configuration)))

    def delete(self) -> None:
        """Delete the peer, its messages and every conclusion by or about it."""
        self._t.unary(self._delete())

    def sessions(self, filters: Mapping[str, Any] | None = None, *,
                 reverse: bool = False) -> Iterator[Session]:
        """The sessions this peer belongs to (pages fetched as you iterate)."""
        return self._t.pages(self._sessions(
            filters, reverse, lambda s: Session(self._honcho, s.id, s)))

    @overload
    def chat(self, query: str, *, target: Peer | str | None = ...,
             session: Session | str | None = ..., reasoning_level: str | None = ...,
             response_format: Mapping[str, Any] | None = ..., stream: Literal[False] = ...,
             timeout: float | None = ..., scope: Any = ...,
             sessions: Any = ...) -> ChatAnswer: ...

    @overload
    def chat(self, query: str, *, target: Peer | str | None = ...,
             session: Session | str | None = ..., reasoning_level: str | None = ...,
             response_format: Mapping[str, Any] | None = ..., stream: Literal[True],
             timeout: float | None = ..., scope: Any = ...,
             sessions: Any = ...) -> ChatStream: ...

    def chat(self, query: str, *, target: Peer | str | None = None,
             session: Session | str | None = None, reasoning_level: str | None = None,
             response_format: Mapping[str, Any] | None = None, stream: bool = False,
             timeout: float | None = _UNSET, scope: Any = None,
             sessions: Any = None) -> ChatAnswer | ChatStream:
        """Ask what this peer knows about `target` (default: itself).

        Returns the answer (a `str` with `.conclusion_ids` and token counts), or with
        `stream=True` a `ChatStream` of text deltas. `reasoning_level` is one of minimal, low,
        medium, high, max. With `response_format` (a JSON Schema) the answer is JSON.
        `scope` (a scope or a list of them) or `sessions` (an allowlist) confine the answer
        to those sessions' messages and the explicit conclusions drawn in them.
        """
        q = self._chat_query(query, target, session, reasoning_level, response_format, scope,
                             sessions)
        deadline = self._t.settings.stream_timeout if timeout is _UNSET else timeout
        if stream:
            return ChatStream(self._t.server_stream(self._stream_chat(q), deadline))
        answer: ChatAnswer = self._t.unary(self._chat(q), deadline)
        return answer

    def chat_stream(self, query: str, *, target: Peer | str | None = None,
                    session: Session | str | None = None, reasoning_level: str | None = None,
                    response_format: Mapping[str, Any] | None = None,
                    timeout: float | None = _UNSET, scope: Any = None,
                    sessions: Any = None) -> ChatStream:
        """`chat(..., stream=True)` under the name Honcho's SDK uses."""
        return self.chat(query, target=target, session=session,
                         reasoning_level=reasoning_level, response_format=response_format,
                         stream=True, timeout=timeout, scope=scope, sessions=sessions)

    def get_card(self, target: Peer | str | None = None) -> list[str]:
        """The card this peer keeps about `target` (default itself); [] when none exists."""
        entries: list[str] = self._t.unary(self._card(target))
        return entries

    card = get_card  # Honcho's SDK kept `card` as the deprecated name

    def set_card(self, peer_card: Iterable[str], target: Peer | str | None = None) -> list[str]:
        """Replace the card this peer keeps about `target` (default itself)."""
        stored: list[str] = self._t.unary(self._set_card(peer_card, target))
        return stored

    def representation(self, session: Session | str | None = None,
                       target: Peer | str | None = None, search_query: str | None = None,
                       search_top_k: int | None = None,
                       search_max_distance: float | None = None,
                       include_most_frequent: bool | None = None,
                       max_conclusions: int | None = None, *, scope: Any = None,
                       sessions: Any = None) -> str:
        """What this peer holds about `target` (default itself), within `session` if given,
        as markdown grouped by reasoning level. The argument order is Honcho's SDK's.
        `scope` / `sessions`: only explicit conclusions drawn in those sessions."""
        session, target = session_and_target(session, target)
        text: str = self._t.unary(self._representation(
            target, session, search_query, search_top_k, search_max_distance,
            bool(include_most_frequent), max_conclusions, scope, sessions))
        return text

    def context(self, target: Peer | str | None = None, search_query: str | None = None,
                search_top_k: int | None = None, search_max_distance: float | None = None,
                include_most_frequent: bool | None = None,
                max_conclusions: int | None = None) -> PeerContext:
        """Representation and peer card together."""
        ctx: PeerContext = self._t.unary(self._context(
            target, search_query, search_top_k, search_max_distance, include_most_frequent,
            max_conclusions))
        return ctx

    def search(self, query: str, filters: Mapping[str, Any] | None = None,
               limit: int | None = None) -> list[Message]:
        """Search the messages this peer wrote."""
        hits: list[Message] = self._t.unary(self._honcho._search(query, filters, limit,
                                                                 peer_id=self.id))
        return hits

    @property
    def conclusions(self) -> ConclusionsView:
        """What this peer concluded about itself: `.list()`, `.query()`, `.create()`,
        `.delete()`, `.representation()` as in Honcho's SDK; calling it,
        `peer.conclusions(about)`, lists what it concluded about `about`."""
        return ConclusionsView(self, self)

    def conclusions_of(self, target: Peer | str) -> ConclusionsView:
        """What this peer concluded about `target` (the same view)."""
        return ConclusionsView(self, target)

    def query_conclusions(self, query: str, about: Peer | str | None = None, *,
                          top_k: int | None = None, max_distance: float | None = None,
                          filters: Mapping[str, Any] | None = None) -> list[Conclusion]:
        """Semantic search among this peer's conclusions about `about`, nearest first."""
        found: list[Conclusion] = self._t.unary(self._query_conclusions(
            query, about, top_k, max_distance, filters))
        return found

    def add_conclusions(self, conclusions: Iterable[str | ConclusionCreate],
                        about: Peer | str | None = None, *,
                        session: Session | str | None = None) -> list[Conclusion]:
        """Store explicit conclusions this peer holds about `about` (default itself)."""
        stored: list[Conclusion] = self._t.unary(self._create_conclusions(
            conclusions, about, session))
        return stored


class ConclusionsView:
    """The conclusions `observer` holds about `observed` (Honcho SDK's ConclusionsView)."""

    def __init__(self, observer: Peer, observed: Peer | str) -> None:
        self.observer = observer
        self.observed = observed

    def __repr__(self) -> str:
        return f"ConclusionsView(observer={self.observer.id!r}, observed={_id(self.observed)!r})"

    def __call__(self, about: Peer | str | None = None, *,
                 session: Session | str | None = None,
                 filters: Mapping[str, Any] | None = None, reverse: bool = False,
                 include_invalid: bool = False) -> Iterator[Conclusion]:
        """Newest first; `about` overrides the observed peer."""
        peer = self.observer
        return peer._t.pages(peer._list_conclusions(about or self.observed, session, filters,
                                                    reverse, include_invalid))

    def query(self, query: str, top_k: int | None = None, distance: float | None = None, *,
              filters: Mapping[str, Any] | None = None) -> list[Conclusion]:
        """Semantic search, nearest first."""
        return self.observer.query_conclusions(query, self.observed, top_k=top_k,
                                               max_distance=distance, filters=filters)

    def create(self, conclusions: Any) -> list[Conclusion]:
        """Store explicit conclusions: strings, ConclusionCreate or `{"content", "session_id"}`."""
        peer = self.observer
        stored: list[Conclusion] = peer._t.unary(peer._create_conclusions(
            conclusion_inputs(conclusions, self.observed), None, None))
        return stored

    def delete(self, conclusion_id: str) -> None:
        self.observer._honcho.delete_conclusion(conclusion_id)

    def representation(self, search_query: str | None = None, search_top_k: int | None = None,
                       search_max_distance: float | None = None,
                       include_most_frequent: bool | None = None,
                       max_conclusions: int | None = None) -> str:
        return self.observer.representation(
            target=self.observed, search_query=search_query, search_top_k=search_top_k,
            search_max_distance=search_max_distance,
            include_most_frequent=include_most_frequent, max_conclusions=max_conclusions)

    # last: a method named `list` shadows the builtin in the annotations after it
    def list(self, *, session: Session | str | None = None,
             filters: Mapping[str, Any] | None = None, reverse: bool = False,
             include_invalid: bool = False) -> Iterator[Conclusion]:
        """Newest first, pages fetched as you iterate."""
        return self(session=session, filters=filters, reverse=reverse,
                    include_invalid=include_invalid)


class WorkspaceConclusions:
    """Every conclusion of the workspace (Honcho SDK's `honcho.conclusions`)."""

    def __init__(self, honcho: Honcho) -> None:
        self._honcho = honcho

    def __call__(self, *, filters: Mapping[str, Any] | None = None, reverse: bool = False,
                 include_invalid: bool = False) -> Iterator[Conclusion]:
        h = self._honcho
        return h._transport.pages(h._list_conclusions(filters, reverse, include_invalid))

    def list(self, *, filters: Mapping[str, Any] | None = None, reverse: bool = False,
             include_invalid: bool = False) -> Iterator[Conclusion]:
        return self(filters=filters, reverse=reverse, include_invalid=include_invalid)

    def delete(self, conclusion_id: str) -> None:
        self._honcho.delete_conclusion(conclusion_id)


class Session(SessionOps):
    """A handle on a session. Creating the handle does no I/O; writing messages creates the
    session, or call `get_or_create()`."""

    def __init__(self, honcho: Honcho, session_id: str,
                 resource: resources_pb2.Session | None = None) -> None:
        self._honcho = honcho
        self._t = honcho._transport
        self.id = session_id
        self.workspace_id = honcho.workspace_id
        self.metadata: dict[str, Any] | None = None
        self.configuration: dict[str, Any] | None = None
        self.active: bool | None = None
        self.created_at: dt.datetime | None = None
        if resource is not None:
            self._load(resource)

    def _load(self, resource: resources_pb2.Session) -> Session:
        self.metadata, self.configuration = resource_fields(resource)
        self.active = resource.active
        self.created_at = to_datetime(resource.create_time, resource.HasField("create_time"))
        return self

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, workspace_id={self.workspace_id!r})"

    @property
    def is_active(self) -> bool | None:
        """Honcho SDK's name for `active` (None until loaded)."""
        return self.active

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Session) and other.id == self.id
                and other.workspace_id == self.workspace_id)

    def __hash__(self) -> int:
        return hash(("session", self.workspace_id, self.id))

    def get_or_create(self, *, metadata: Mapping[str, Any] | None = None,
                      configuration: Mapping[str, Any] | None = None,
                      peers: Any = None, scopes: Any = None) -> Session:
        """Create the session if missing (metadata/configuration apply only then); it joins
        `scopes` (created when missing) in the same call."""
        return self._load(self._t.unary(self._get_or_create(metadata, configuration, peers,
                                                            scopes)))

    def refresh(self) -> Session:
        return self._load(self._t.unary(self._get()))

    def get_metadata(self) -> dict[str, Any]:
        self.refresh()
        return dict(self.metadata or {})

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        self.get_or_create()
        self._load(self._t.unary(self._update(metadata, None)))

    def get_configuration(self) -> dict[str, Any]:
        self.refresh()
        return dict(self.configuration or {})

    def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        """e.g. `{"reasoning": {"enabled": False}, "summary": {"enabled": True}}`."""
        self.get_or_create()
        self._load(self._t.unary(self._update(None, configuration)))

    def delete(self) -> None:
        """Delete the session and everything derived from it."""
        self._t.unary(self._delete())

    def clone(self, *, message_id: str | None = None,
              new_session_id: str | None = None) -> Session:
        """Copy messages (up to and including `message_id`) and members into a new session."""
        resource = self._t.unary(self._clone(message_id, new_session_id))
        return Session(self._honcho, resource.id, resource)

    # members

    def add_peers(self, peers: Any) -> list[SessionMember]:
        """Add peers (created if missing): ids, Peer handles, `(peer, SessionPeerConfig)`
        pairs, or a dict {peer: config}. Returns the current members."""
        members: list[SessionMember] = self._t.unary(self._add_peers(peers))
        return members

    def set_peers(self, peers: Any) -> list[SessionMember]:
        """Make the member set exactly `peers`."""
        members: list[SessionMember] = self._t.unary(self._set_peers(peers))
        return members

    def remove_peers(self, peers: Any) -> list[SessionMember]:
        members: list[SessionMember] = self._t.unary(self._remove_peers(peers))
        return members

    def members(self, *, include_inactive: bool = False) -> list[SessionMember]:
        """Members with their settings and join/leave times."""
        return list(self._t.pages(self._members(include_inactive)))

    def peers(self) -> list[Peer]:
        """The current members as Peer handles."""
        return [Peer(self._honcho, m.peer_id) for m in self.members()]

    def peer_config(self, peer: Peer | str) -> SessionPeerConfig:
        config: SessionPeerConfig = self._t.unary(self._peer_config(peer))
        return config

    get_peer_configuration = peer_config  # Honcho's SDK name

    def set_peer_config(self, peer: Peer | str, config: SessionPeerConfig | None = None, *,
                        observe_me: bool | None = None,
                        observe_others: bool | None = None) -> SessionPeerConfig:
        """Set a member's observation settings; unset fields are left as they are."""
        config = config or SessionPeerConfig(observe_me=observe_me,
                                             observe_others=observe_others)
        stored: SessionPeerConfig = self._t.unary(self._set_peer_config(peer, config))
        return stored

    def set_peer_configuration(self, peer: Peer | str,
                               configuration: SessionPeerConfig) -> SessionPeerConfig:
        """Honcho's SDK name for `set_peer_config`."""
        return self.set_peer_config(peer, configuration)

    # messages

    def add_messages(self, messages: MessageCreate | Iterable[MessageCreate]) -> list[Message]:
        """Write messages in order; authors join the session. Sent in batches of at most 100
        (each batch atomic, each with its own idempotency key so a retry never duplicates)."""
        out: list[Message] = []
        for op in self._create_batches(messages):
            out.extend(self._t.unary(op))
        return out

    def import_messages(self, messages: Iterable[MessageCreate], *, chunk_size: int = 1000,
                        timeout: float | None = _UNSET) -> int:
        """Bulk load over one client stream (large transactions; no per-call limit)."""
        deadline = self._t.settings.stream_timeout if timeout is _UNSET else timeout
        count: int = self._t.client_stream(self._import(messages, chunk_size), deadline)
        return count

    def upload_file(self, file: Any, peer: Peer | str,
                    metadata: Mapping[str, Any] | None = None,
                    configuration: Mapping[str, Any] | None = None,
                    created_at: dt.datetime | None = None, *, filename: str | None = None,
                    content_type: str | None = None) -> list[Message]:
        """Upload text, JSON or PDF as messages: bytes, a path, a binary file object, or
        `(filename, bytes or file object, content_type)` as in Honcho's SDK."""
        data, name, ctype = read_file_arg(file, filename, content_type)
        created: list[Message] = self._t.client_stream(
            self._upload(data, peer, name, ctype, metadata, configuration, created_at),
            self._t.settings.stream_timeout)
        return created

    def messages(self, *, filters: Mapping[str, Any] | None = None, reverse: bool = False,
                 page_size: int = PAGE_SIZE) -> Iterator[Message]:
        """All messages in order (newest first with reverse), fetched page by page."""
        return self._t.pages(self._list_messages(filters, reverse, page_size))

    def get_message(self, message_id: str) -> Message:
        message: Message = self._t.unary(self._get_message(message_id))
        return message

    def update_message(self, message: Message | str, metadata: Mapping[str, Any]) -> Message:
        """Replace a message's metadata (content is immutable); `message` or its id."""
        updated: Message = self._t.unary(self._update_message(_id(message), metadata))
        return updated

    def delete_message(self, message_id: str) -> None:
        self._t.unary(self._delete_message(message_id))

    def search(self, query: str, filters: Mapping[str, Any] | None = None,
               limit: int | None = None) -> list[Message]:
        """Hybrid (semantic + full-text) search in this session; best first."""
        hits: list[Message] = self._t.unary(self._honcho._search(query, filters, limit,
                                                                 session_id=self.id))
        return hits

    def context(self, tokens: int | None = None, *, summary: bool = True,
                peer_target: Peer | str | None = None,
                peer_perspective: Peer | str | None = None, search_query: str | None = None,
                search_top_k: int | None = None, search_max_distance: float | None = None,
                include_most_frequent: bool = False, max_conclusions: int | None = None,
                limit_to_session: bool = False, scope: Scope | str | None = None,
                sessions: Iterable[Session | str] | None = None) -> SessionContext:
        """Prompt-ready context within `tokens`: a summary, the newest messages after it and,
        with `peer_target`, that peer's representation and card. See `to_openai()`. With
        `scope` or `sessions` (which must include this one) the representation is confined
        to those sessions and the card left out."""
        ctx: SessionContext = self._t.unary(self._context(
            tokens, summary, peer_target, peer_perspective, search_query, search_top_k,
            search_max_distance, include_most_frequent, max_conclusions, limit_to_session,
            scope, sessions))
        return ctx

    def summaries(self) -> Summaries:
        result: Summaries = self._t.unary(self._summaries())
        return result

    def representation(self, peer: Peer | str, *, target: Peer | str | None = None,
                       search_query: str | None = None, search_top_k: int | None = None,
                       search_max_distance: float | None = None,
                       include_most_frequent: bool | None = None,
                       max_conclusions: int | None = None) -> str:
        """What `peer` holds about `target` (default itself) within this session."""
        return Peer(self._honcho, _id(peer)).representation(
            self, target, search_query, search_top_k, search_max_distance,
            include_most_frequent, max_conclusions)

    def queue_status(self, observer: Peer | str | None = None,
                     sender: Peer | str | None = None) -> QueueStatus:
        return self._honcho.queue_status(observer, sender, self.id)


class Scope(ScopeOps):
    """A scope: a named set of sessions that chat, representation, context and search can be
    confined to (`scope=`). Membership counts at once: nothing is copied."""

    def __init__(self, honcho: Honcho, scope_id: str,
                 resource: scope_pb2.Scope | None = None) -> None:
        self._honcho = honcho
        self._t = honcho._transport
        self.id = scope_id
        self.workspace_id = honcho.workspace_id
        self.metadata: dict[str, Any] | None = None
        self.created_at: dt.datetime | None = None
        if resource is not None:
            self.metadata = struct_to_dict(resource.metadata)
            self.created_at = to_datetime(resource.create_time,
                                          resource.HasField("create_time"))

    def __repr__(self) -> str:
        return f"Scope(id={self.id!r}, workspace_id={self.workspace_id!r})"

    def add_sessions(self, sessions: Iterable[Session | str]) -> int:
        """Add existing sessions (at most 100 a call); how many were not members yet."""
        added: int = self._t.unary(self._add_sessions(list(sessions)))
        return added

    def remove_session(self, session: Session | str) -> bool:
        """Remove a session; False when it was not a member."""
        removed: bool = self._t.unary(self._remove_session(session))
        return removed

    def sessions(self, *, reverse: bool = False) -> Iterator[Session]:
        """The member sessions, longest-standing first."""
        return self._t.pages(self._sessions(reverse, lambda s: Session(self._honcho, s.id, s)))

    def status(self) -> dict[str, ScopeMember]:
        """Every member by session id: when it joined, what the scope sees of it."""
        found: dict[str, ScopeMember] = self._t.unary(self._status())
        return found


class Honcho(HonchoOps):
    """A client for one workspace.

    `address` (host:port), `workspace_id` and `token` default to the environment variables
    HONCHO_ADDRESS, HONCHO_WORKSPACE_ID and HONCHO_API_KEY. `timeout` is the deadline of unary
    calls in seconds, `stream_timeout` that of streamed chat, imports and uploads (None: no
    deadline). UNAVAILABLE is retried with backoff per `retry` (RetryPolicy, or
    `RetryPolicy(max_attempts=1)` to disable). `tls=True` (or `root_certificates`) uses TLS;
    `private_key` and `certificate_chain` (PEM bytes) present a client certificate (mTLS).
    Pass `channel` to use a channel of your own (options, interceptors, credentials).
    """

    def __init__(self, address: str | None = None, workspace_id: str | None = None,
                 token: str | None = None, *, timeout: float | None = DEFAULT_TIMEOUT,
                 stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT,
                 retry: RetryPolicy | None = None, tls: bool | None = None,
                 root_certificates: bytes | None = None,
                 private_key: bytes | None = None, certificate_chain: bytes | None = None,
                 options: Iterable[tuple[str, Any]] | None = None,
                 channel: grpc.Channel | None = None, api_key: str | None = None) -> None:
        settings = Settings.resolve(address, workspace_id, token or api_key, timeout,
                                    stream_timeout, retry, tls, root_certificates, options,
                                    private_key=private_key,
                                    certificate_chain=certificate_chain)
        self.workspace_id = settings.workspace_id
        self._transport = _Transport(settings, channel)
        self.metadata: dict[str, Any] | None = None
        self.configuration: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (f"Honcho(address={self._transport.settings.address!r}, "
                f"workspace_id={self.workspace_id!r})")

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Honcho:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # handles

    def peer(self, peer_id: str, *, metadata: Mapping[str, Any] | None = None,
             configuration: Mapping[str, Any] | None = None, create: bool = False) -> Peer:
        """A peer handle. With metadata, configuration or `create=True` the peer is
        created now if missing (metadata and configuration apply only on creation);
        otherwise no call is made."""
        peer = Peer(self, peer_id)
        if create or metadata is not None or configuration is not None:
            peer.get_or_create(metadata=metadata, configuration=configuration)
        return peer

    def session(self, session_id: str, *, metadata: Mapping[str, Any] | None = None,
                configuration: Mapping[str, Any] | None = None, peers: Any = None,
                create: bool = True, scopes: Any = None) -> Session:
        """The session, got or created now (one call), as Honcho's SDK does; with
        `create=False` (and no metadata, configuration or peers) a handle without a call.
        `scopes`: scopes it joins (created when missing), in the same call."""
        session = Session(self, session_id)
        if create or metadata is not None or configuration is not None or peers is not None \
                or scopes is not None:
            session.get_or_create(metadata=metadata, configuration=configuration, peers=peers,
                                  scopes=scopes)
        return session

    def scope(self, scope_id: str, *, metadata: Mapping[str, Any] | None = None) -> Scope:
        """The scope, got or created now (metadata applies only on creation)."""
        return Scope(self, scope_id, self._transport.unary(
            self._get_or_create_scope(scope_id, metadata)))

    def get_scope(self, scope_id: str) -> Scope:
        """An existing scope (NotFoundError else); never creates one."""
        return Scope(self, scope_id, self._transport.unary(self._get_scope(scope_id)))

    def scopes(self, *, reverse: bool = False) -> Iterator[Scope]:
        """Every scope of the workspace, oldest first, page by page as you iterate."""
        return self._transport.pages(self._list_scopes(reverse, lambda s: Scope(self, s.id, s)))

    def peers(self, filters: Mapping[str, Any] | None = None, *,
              reverse: bool = False) -> Iterator[Peer]:
        """Every peer of the workspace, page by page as you iterate."""
        return self._transport.pages(self._list_peers(filters, reverse,
                                                      lambda p: Peer(self, p.id, p)))

    def sessions(self, filters: Mapping[str, Any] | None = None, *,
                 reverse: bool = False) -> Iterator[Session]:
        return self._transport.pages(self._list_sessions(filters, reverse,
                                                         lambda s: Session(self, s.id, s)))

    def search(self, query: str, filters: Mapping[str, Any] | None = None,
               limit: int | None = None, *, scope: Any = None) -> list[Message]:
        """Hybrid search over every message of the workspace (of `scope`'s sessions only,
        when given); best first."""
        hits: list[Message] = self._transport.unary(self._search(query, filters, limit,
                                                                 scope=scope))
        return hits

    # workspace

    def refresh(self) -> Honcho:
        """Reload the workspace's metadata and configuration (NotFoundError if missing)."""
        self.metadata, self.configuration = resource_fields(
            self._transport.unary(self._get_workspace()))
        return self

    def get_metadata(self) -> dict[str, Any]:
        return resource_fields(self._transport.unary(self._get_or_create_workspace()))[0]

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        self._transport.unary(self._get_or_create_workspace())
        self._transport.unary(self._update_workspace(metadata, None))

    def get_configuration(self) -> dict[str, Any]:
        return resource_fields(self._transport.unary(self._get_or_create_workspace()))[1]

    def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        self._transport.unary(self._get_or_create_workspace())
        self._transport.unary(self._update_workspace(None, configuration))

    def workspaces(self, filters: Mapping[str, Any] | None = None, *,
                   reverse: bool = False) -> Iterator[str]:
        """Ids of the workspaces this client may see."""
        return self._transport.pages(self._list_workspaces(filters, reverse))

    def delete_workspace(self, workspace_id: str | None = None) -> None:
        """Delete a workspace (default: this client's) and everything in it."""
        self._transport.unary(self._delete_workspace(workspace_id))

    # background work

    def queue_status(self, observer: Peer | str | None = None,
                     sender: Peer | str | None = None,
                     session: Session | str | None = None) -> QueueStatus:
        status: QueueStatus = self._transport.unary(self._queue_status(session, observer,
                                                                       sender))
        return status

    def wait_until_idle(self, *, session: Session | str | None = None,
                        observer: Peer | str | None = None, timeout: float = 60.0,
                        interval: float = 0.25) -> QueueStatus:
        """Poll the queue until nothing is pending or in progress (TimeoutError after
        `timeout` seconds). Failed work does not count as pending."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.queue_status(observer, session=session)
            if status.totals.idle:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"queue still busy after {timeout}s: {status.totals}")
            time.sleep(interval)

    def schedule_dream(self, observer: Peer | str, session: Session | str | None = None,
                       observed: Peer | str | None = None, *,
                       dream_type: str = "omni") -> bool:
        """Queue a consolidation of what `observer` holds about `observed` (default itself).
        The argument order is Honcho's SDK's; `observed` used to come second, so a peer
        handle given as `session` is refused."""
        if isinstance(session, PeerOps):
            raise TypeError("schedule_dream(observer, session, observed): the second argument "
                            f"is the session, got the peer {session.id!r}; pass observed=")
        queued: bool = self._transport.unary(self._schedule_dream(observer, observed, session,
                                                                  dream_type))
        return queued

    def events(self, *, session: Session | str | None = None, peer: Peer | str | None = None,
               types: Iterable[str] | None = None) -> EventStream:
        """Watch events (no deadline): `with honcho.events() as feed: feed.ready(); for e in
        feed: ...`. `types` among messages_created, conclusions_derived,
        conclusion_invalidated, summary_created, peer_card_updated, queue_drained,
        embeddings_drained."""
        return EventStream(self._transport, self._watch_events(session, peer, types))

    # conclusions and keys

    @property
    def conclusions(self) -> WorkspaceConclusions:
        """Every conclusion of the workspace: `honcho.conclusions.list(filters=...)`, or
        call it: `honcho.conclusions(filters=...)`."""
        return WorkspaceConclusions(self)

    def delete_conclusion(self, conclusion_id: str) -> None:
        self._transport.unary(self._delete_conclusion(conclusion_id))

    def create_key(self, *, peer: Peer | str | None = None,
                   session: Session | str | None = None,
                   expires_at: dt.datetime | None = None, admin: bool = False) -> str:
        """A JWT scoped to this workspace (narrowed to a peer or session), or admin."""
        key: str = self._transport.unary(self._create_key(peer, session, expires_at, admin))
        return key

    # webhooks

    def create_webhook(self, url: str) -> WebhookEndpoint:
        """Register a URL that receives the workspace's events (get-or-create by URL)."""
        endpoint: WebhookEndpoint = self._transport.unary(self._create_webhook(url))
        return endpoint

    def webhooks(self) -> Iterator[WebhookEndpoint]:
        return self._transport.pages(self._list_webhooks())

    def delete_webhook(self, endpoint: WebhookEndpoint | str) -> None:
        self._transport.unary(self._delete_webhook(endpoint))

    def test_webhook(self) -> None:
        """Queue a test event to every endpoint of the workspace."""
        self._transport.unary(self._test_webhook())
