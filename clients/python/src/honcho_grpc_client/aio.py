"""Asynchronous client (grpc.aio), the same API as `Honcho` with awaitables and async
iterators:

    from honcho_grpc_client import AsyncHoncho

    async with AsyncHoncho(address="localhost:50051", workspace_id="my-app") as honcho:
        alice = await honcho.peer("alice")
        session = await honcho.session("session-1")
        await session.add_messages([alice.message("I'm stuck on fractions")])
        async for message in session.messages():
            print(message.content)
        print(await alice.chat("What does alice struggle with?"))
        async for delta in alice.chat("And what helps?", stream=True):
            print(delta, end="", flush=True)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable, Mapping
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


class _AsyncTransport:
    """One grpc.aio channel (opened on first use, inside the running loop) and its stubs."""

    def __init__(self, settings: Settings, channel: grpc.aio.Channel | None) -> None:
        self.settings = settings
        self._owns_channel = channel is None
        self._channel = channel
        self._stubs: dict[str, Any] | None = None
        self.metadata = settings.metadata()

    @property
    def stubs(self) -> dict[str, Any]:
        if self._stubs is None:
            if self._channel is None:
                creds = self.settings.credentials()
                self._channel = (
                    grpc.aio.secure_channel(self.settings.address, creds,
                                            options=self.settings.options)
                    if creds else
                    grpc.aio.insecure_channel(self.settings.address,
                                              options=self.settings.options))
            self._stubs = {name: make(self._channel) for name, make in STUBS.items()}
        return self._stubs

    def _method(self, service: str, method: str) -> Any:
        return getattr(self.stubs[service], method)

    async def unary(self, op: Unary, deadline: float | None = _UNSET) -> Any:
        """`deadline`: seconds the server may take (gRPC deadline; None: none)."""
        deadline = self.settings.timeout if deadline is _UNSET else deadline
        try:
            response = await self._method(op.service, op.method)(
                op.request, timeout=deadline, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return op.read(response)

    async def pages(self, op: Paged) -> AsyncIterator[Any]:
        request = op.request
        while True:
            response = await self.unary(Unary(op.service, op.method, request))
            for item in op.items(response):
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    async def server_stream(self, op: ServerStream,
                            deadline: float | None) -> AsyncIterator[Any]:
        call = self._method(op.service, op.method)(op.request, timeout=deadline,
                                                    metadata=self.metadata)
        try:
            async for item in call:
                yield op.read(item)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()  # a no-op when the stream ended; stops server work when abandoned

    async def client_stream(self, op: ClientStream, deadline: float | None) -> Any:
        try:
            response = await self._method(op.service, op.method)(
                iter(op.requests), timeout=deadline, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return op.read(response)

    async def close(self) -> None:
        if self._owns_channel and self._channel is not None:
            await self._channel.close()
        self._channel, self._stubs = None, None


class AsyncChatStream:
    """A streamed answer: `async for delta in stream`; then `completion` and `text`.
    `await stream.cancel()` (or leaving `async with`) stops the server's work."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self._events = events
        self.completion: ChatCompletion | None = None
        self._parts: list[str] = []

    async def __aiter__(self) -> AsyncIterator[str]:
        async for event in self._events:
            if event.HasField("delta"):
                self._parts.append(event.delta.content)
                yield event.delta.content
            elif event.HasField("completion"):
                self.completion = ChatCompletion.from_proto(event.completion)

    def __await__(self) -> Generator[Any, None, AsyncChatStream]:
        """`stream = await peer.chat(q, stream=True)` works too."""
        async def itself() -> AsyncChatStream:
            return self

        return itself().__await__()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    async def read(self) -> str:
        async for _ in self:
            pass
        return self.text

    async def cancel(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()


class AsyncEventStream:
    """A live feed of events: `async for event in feed`; `await feed.ready()` returns once
    the server listens (nothing committed afterwards is missed); `await feed.close()` (or
    leaving `async with`) stops."""

    def __init__(self, transport: _AsyncTransport, op: ServerStream) -> None:
        self._t = transport
        self._op = op
        self._call: Any = None

    def _start(self) -> Any:
        if self._call is None:
            self._call = self._t._method(self._op.service, self._op.method)(
                self._op.request, timeout=None, metadata=self._t.metadata)
        return self._call

    async def ready(self) -> AsyncEventStream:
        await self._start().initial_metadata()
        return self

    async def __aiter__(self) -> AsyncIterator[Event]:
        call = self._start()
        try:
            async for item in call:
                yield self._op.read(item)
        except asyncio.CancelledError:
            raise
        except grpc.RpcError as e:
            if call.cancelled():
                return  # closed by us
            raise from_rpc_error(e) from e

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPeer(PeerOps):
    """A peer handle; see `Peer`."""

    def __init__(self, honcho: AsyncHoncho, peer_id: str,
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

    def _load(self, resource: resources_pb2.Peer) -> AsyncPeer:
        self.metadata, self.configuration = resource_fields(resource)
        self.created_at = to_datetime(resource.create_time, resource.HasField("create_time"))
        return self

    def __repr__(self) -> str:
        return f"AsyncPeer(id={self.id!r}, workspace_id={self.workspace_id!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AsyncPeer) and other.id == self.id
                and other.workspace_id == self.workspace_id)

    def __hash__(self) -> int:
        return hash(("peer", self.workspace_id, self.id))

    async def get_or_create(self, *, metadata: Mapping[str, Any] | None = None,
                            configuration: Mapping[str, Any] | None = None) -> AsyncPeer:
        return self._load(await self._t.unary(self._get_or_create(metadata, configuration)))

    async def refresh(self) -> AsyncPeer:
        return self._load(await self._t.unary(self._get()))

    async def get_metadata(self) -> dict[str, Any]:
        await self.refresh()
        return dict(self.metadata or {})

    async def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        await self.get_or_create()
        self._load(await self._t.unary(self._update(metadata, None)))

    async def get_configuration(self) -> dict[str, Any]:
        await self.refresh()
        return dict(self.configuration or {})

    async def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        await self.get_or_create()
        self._load(await self._t.unary(self._update(None, configuration)))

    async def delete(self) -> None:
        await self._t.unary(self._delete())

    def sessions(self, filters: Mapping[str, Any] | None = None, *,
                 reverse: bool = False) -> AsyncIterator[AsyncSession]:
        return self._t.pages(self._sessions(
            filters, reverse, lambda s: AsyncSession(self._honcho, s.id, s)))

    @overload
    def chat(self, query: str, *, target: AsyncPeer | str | None = ...,
             session: AsyncSession | str | None = ..., reasoning_level: str | None = ...,
             response_format: Mapping[str, Any] | None = ..., stream: Literal[False] = ...,
             timeout: float | None = ..., scope: Any = ...,
             sessions: Any = ...) -> Awaitable[ChatAnswer]: ...

    @overload
    def chat(self, query: str, *, target: AsyncPeer | str | None = ...,
             session: AsyncSession | str | None = ..., reasoning_level: str | None = ...,
             response_format: Mapping[str, Any] | None = ..., stream: Literal[True],
             timeout: float | None = ..., scope: Any = ...,
             sessions: Any = ...) -> AsyncChatStream: ...

    def chat(self, query: str, *, target: AsyncPeer | str | None = None,
             session: AsyncSession | str | None = None, reasoning_level: str | None = None,
             response_format: Mapping[str, Any] | None = None, stream: bool = False,
             timeout: float | None = _UNSET, scope: Any = None,
             sessions: Any = None) -> Awaitable[ChatAnswer] | AsyncChatStream:
        """`await peer.chat(q)` for the answer; `async for d in peer.chat(q, stream=True)`
        for deltas. See `Peer.chat`."""
        q = self._chat_query(query, target, session, reasoning_level, response_format, scope,
                             sessions)
        deadline = self._t.settings.stream_timeout if timeout is _UNSET else timeout
        if stream:
            return AsyncChatStream(self._t.server_stream(self._stream_chat(q), deadline))
        answer: Awaitable[ChatAnswer] = self._t.unary(self._chat(q), deadline)
        return answer

    def chat_stream(self, query: str, *, target: AsyncPeer | str | None = None,
                    session: AsyncSession | str | None = None,
                    reasoning_level: str | None = None,
                    response_format: Mapping[str, Any] | None = None,
                    timeout: float | None = _UNSET, scope: Any = None,
                    sessions: Any = None) -> AsyncChatStream:
        """`chat(..., stream=True)` under the name Honcho's SDK uses."""
        return self.chat(query, target=target, session=session,
                         reasoning_level=reasoning_level, response_format=response_format,
                         stream=True, timeout=timeout, scope=scope, sessions=sessions)

    async def get_card(self, target: AsyncPeer | str | None = None) -> list[str]:
        entries: list[str] = await self._t.unary(self._card(target))
        return entries

    card = get_card  # Honcho's SDK kept `card` as the deprecated name

    async def set_card(self, peer_card: Iterable[str],
                       target: AsyncPeer | str | None = None) -> list[str]:
        stored: list[str] = await self._t.unary(self._set_card(peer_card, target))
        return stored

    async def representation(self, session: AsyncSession | str | None = None,
                             target: AsyncPeer | str | None = None,
                             search_query: str | None = None, search_top_k: int | None = None,
                             search_max_distance: float | None = None,
                             include_most_frequent: bool | None = None,
                             max_conclusions: int | None = None, *, scope: Any = None,
                             sessions: Any = None) -> str:
        """See `Peer.representation` (Honcho's argument order: session, then target)."""
        session, target = session_and_target(session, target)
        text: str = await self._t.unary(self._representation(
            target, session, search_query, search_top_k, search_max_distance,
            bool(include_most_frequent), max_conclusions, scope, sessions))
        return text

    async def context(self, target: AsyncPeer | str | None = None,
                      search_query: str | None = None, search_top_k: int | None = None,
                      search_max_distance: float | None = None,
                      include_most_frequent: bool | None = None,
                      max_conclusions: int | None = None) -> PeerContext:
        ctx: PeerContext = await self._t.unary(self._context(
            target, search_query, search_top_k, search_max_distance, include_most_frequent,
            max_conclusions))
        return ctx

    async def search(self, query: str, filters: Mapping[str, Any] | None = None,
                     limit: int | None = None) -> list[Message]:
        hits: list[Message] = await self._t.unary(self._honcho._search(
            query, filters, limit, peer_id=self.id))
        return hits

    @property
    def conclusions(self) -> AsyncConclusionsView:
        """See `Peer.conclusions`: `async for c in peer.conclusions(about)`, or the view's
        `list()`, `query()`, `create()`, `delete()`, `representation()`."""
        return AsyncConclusionsView(self, self)

    def conclusions_of(self, target: AsyncPeer | str) -> AsyncConclusionsView:
        return AsyncConclusionsView(self, target)

    async def query_conclusions(self, query: str, about: AsyncPeer | str | None = None, *,
                                top_k: int | None = None, max_distance: float | None = None,
                                filters: Mapping[str, Any] | None = None) -> list[Conclusion]:
        found: list[Conclusion] = await self._t.unary(self._query_conclusions(
            query, about, top_k, max_distance, filters))
        return found

    async def add_conclusions(self, conclusions: Iterable[str | ConclusionCreate],
                              about: AsyncPeer | str | None = None, *,
                              session: AsyncSession | str | None = None) -> list[Conclusion]:
        stored: list[Conclusion] = await self._t.unary(self._create_conclusions(
            conclusions, about, session))
        return stored


class AsyncConclusionsView:
    """The conclusions `observer` holds about `observed`; see `ConclusionsView`."""

    def __init__(self, observer: AsyncPeer, observed: AsyncPeer | str) -> None:
        self.observer = observer
        self.observed = observed

    def __repr__(self) -> str:
        return (f"AsyncConclusionsView(observer={self.observer.id!r}, "
                f"observed={_id(self.observed)!r})")

    def __call__(self, about: AsyncPeer | str | None = None, *,
                 session: AsyncSession | str | None = None,
                 filters: Mapping[str, Any] | None = None, reverse: bool = False,
                 include_invalid: bool = False) -> AsyncIterator[Conclusion]:
        peer = self.observer
        return peer._t.pages(peer._list_conclusions(about or self.observed, session, filters,
                                                    reverse, include_invalid))

    async def query(self, query: str, top_k: int | None = None, distance: float | None = None,
                    *, filters: Mapping[str, Any] | None = None) -> list[Conclusion]:
        return await self.observer.query_conclusions(query, self.observed, top_k=top_k,
                                                     max_distance=distance, filters=filters)

    async def create(self, conclusions: Any) -> list[Conclusion]:
        peer = self.observer
        stored: list[Conclusion] = await peer._t.unary(peer._create_conclusions(
            conclusion_inputs(conclusions, self.observed), None, None))
        return stored

    async def delete(self, conclusion_id: str) -> None:
        await self.observer._honcho.delete_conclusion(conclusion_id)

    async def representation(self, search_query: str | None = None,
                             search_top_k: int | None = None,
                             search_max_distance: float | None = None,
                             include_most_frequent: bool | None = None,
                             max_conclusions: int | None = None) -> str:
        return await self.observer.representation(
            target=self.observed, search_query=search_query, search_top_k=search_top_k,
            search_max_distance=search_max_distance,
            include_most_frequent=include_most_frequent, max_conclusions=max_conclusions)

    # last: a method named `list` shadows the builtin in the annotations after it
    def list(self, *, session: AsyncSession | str | None = None,
             filters: Mapping[str, Any] | None = None, reverse: bool = False,
             include_invalid: bool = False) -> AsyncIterator[Conclusion]:
        return self(session=session, filters=filters, reverse=reverse,
                    include_invalid=include_invalid)


class AsyncWorkspaceConclusions:
    """Every conclusion of the workspace; see `WorkspaceConclusions`."""

    def __init__(self, honcho: AsyncHoncho) -> None:
        self._honcho = honcho

    def __call__(self, *, filters: Mapping[str, Any] | None = None, reverse: bool = False,
                 include_invalid: bool = False) -> AsyncIterator[Conclusion]:
        h = self._honcho
        return h._transport.pages(h._list_conclusions(filters, reverse, include_invalid))

    async def delete(self, conclusion_id: str) -> None:
        await self._honcho.delete_conclusion(conclusion_id)

    def list(self, *, filters: Mapping[str, Any] | None = None, reverse: bool = False,
             include_invalid: bool = False) -> AsyncIterator[Conclusion]:
        return self(filters=filters, reverse=reverse, include_invalid=include_invalid)


class AsyncSession(SessionOps):
    """A session handle; see `Session`."""

    def __init__(self, honcho: AsyncHoncho, session_id: str,
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

    def _load(self, resource: resources_pb2.Session) -> AsyncSession:
        self.metadata, self.configuration = resource_fields(resource)
        self.active = resource.active
        self.created_at = to_datetime(resource.create_time, resource.HasField("create_time"))
        return self

    def __repr__(self) -> str:
        return f"AsyncSession(id={self.id!r}, workspace_id={self.workspace_id!r})"

    @property
    def is_active(self) -> bool | None:
        """Honcho SDK's name for `active` (None until loaded)."""
        return self.active

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AsyncSession) and other.id == self.id
                and other.workspace_id == self.workspace_id)

    def __hash__(self) -> int:
        return hash(("session", self.workspace_id, self.id))

    async def get_or_create(self, *, metadata: Mapping[str, Any] | None = None,
                            configuration: Mapping[str, Any] | None = None,
                            peers: Any = None, scopes: Any = None) -> AsyncSession:
        return self._load(await self._t.unary(self._get_or_create(metadata, configuration,
                                                                  peers, scopes)))

    async def refresh(self) -> AsyncSession:
        return self._load(await self._t.unary(self._get()))

    async def get_metadata(self) -> dict[str, Any]:
        await self.refresh()
        return dict(self.metadata or {})

    async def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        await self.get_or_create()
        self._load(await self._t.unary(self._update(metadata, None)))

    async def get_configuration(self) -> dict[str, Any]:
        await self.refresh()
        return dict(self.configuration or {})

    async def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        await self.get_or_create()
        self._load(await self._t.unary(self._update(None, configuration)))

    async def delete(self) -> None:
        await self._t.unary(self._delete())

    async def clone(self, *, message_id: str | None = None,
                    new_session_id: str | None = None) -> AsyncSession:
        resource = await self._t.unary(self._clone(message_id, new_session_id))
        return AsyncSession(self._honcho, resource.id, resource)

    async def add_peers(self, peers: Any) -> list[SessionMember]:
        members: list[SessionMember] = await self._t.unary(self._add_peers(peers))
        return members

    async def set_peers(self, peers: Any) -> list[SessionMember]:
        members: list[SessionMember] = await self._t.unary(self._set_peers(peers))
        return members

    async def remove_peers(self, peers: Any) -> list[SessionMember]:
        members: list[SessionMember] = await self._t.unary(self._remove_peers(peers))
        return members

    async def members(self, *, include_inactive: bool = False) -> list[SessionMember]:
        return [m async for m in self._t.pages(self._members(include_inactive))]

    async def peers(self) -> list[AsyncPeer]:
        return [AsyncPeer(self._honcho, m.peer_id) for m in await self.members()]

    async def peer_config(self, peer: AsyncPeer | str) -> SessionPeerConfig:
        config: SessionPeerConfig = await self._t.unary(self._peer_config(peer))
        return config

    get_peer_configuration = peer_config  # Honcho's SDK name

    async def set_peer_config(self, peer: AsyncPeer | str,
                              config: SessionPeerConfig | None = None, *,
                              observe_me: bool | None = None,
                              observe_others: bool | None = None) -> SessionPeerConfig:
        config = config or SessionPeerConfig(observe_me=observe_me,
                                             observe_others=observe_others)
        stored: SessionPeerConfig = await self._t.unary(self._set_peer_config(peer, config))
        return stored

    async def set_peer_configuration(self, peer: AsyncPeer | str,
                                     configuration: SessionPeerConfig) -> SessionPeerConfig:
        """Honcho's SDK name for `set_peer_config`."""
        return await self.set_peer_config(peer, configuration)

    async def add_messages(self, messages: MessageCreate | Iterable[MessageCreate]
                           ) -> list[Message]:
        """See `Session.add_messages`: batches of at most 100, in order."""
        out: list[Message] = []
        for op in self._create_batches(messages):
            out.extend(await self._t.unary(op))
        return out

    async def import_messages(self, messages: Iterable[MessageCreate], *,
                              chunk_size: int = 1000,
                              timeout: float | None = _UNSET) -> int:  # noqa: ASYNC109
        # `timeout` is the call's gRPC deadline (as in the sync client), not a local timer.
        deadline = self._t.settings.stream_timeout if timeout is _UNSET else timeout
        count: int = await self._t.client_stream(self._import(messages, chunk_size), deadline)
        return count

    async def upload_file(self, file: Any, peer: AsyncPeer | str,
                          metadata: Mapping[str, Any] | None = None,
                          configuration: Mapping[str, Any] | None = None,
                          created_at: dt.datetime | None = None, *,
                          filename: str | None = None,
                          content_type: str | None = None) -> list[Message]:
        """See `Session.upload_file`."""
        data, name, ctype = read_file_arg(file, filename, content_type)
        created: list[Message] = await self._t.client_stream(
            self._upload(data, peer, name, ctype, metadata, configuration, created_at),
            self._t.settings.stream_timeout)
        return created

    def messages(self, *, filters: Mapping[str, Any] | None = None, reverse: bool = False,
                 page_size: int = PAGE_SIZE) -> AsyncIterator[Message]:
        """`async for m in session.messages()`: every message, page by page."""
        return self._t.pages(self._list_messages(filters, reverse, page_size))

    async def get_message(self, message_id: str) -> Message:
        message: Message = await self._t.unary(self._get_message(message_id))
        return message

    async def update_message(self, message: Message | str,
                             metadata: Mapping[str, Any]) -> Message:
        updated: Message = await self._t.unary(self._update_message(_id(message), metadata))
        return updated

    async def delete_message(self, message_id: str) -> None:
        await self._t.unary(self._delete_message(message_id))

    async def search(self, query: str, filters: Mapping[str, Any] | None = None,
                     limit: int | None = None) -> list[Message]:
        hits: list[Message] = await self._t.unary(self._honcho._search(
            query, filters, limit, session_id=self.id))
        return hits

    async def context(self, tokens: int | None = None, *, summary: bool = True,
                      peer_target: AsyncPeer | str | None = None,
                      peer_perspective: AsyncPeer | str | None = None,
                      search_query: str | None = None, search_top_k: int | None = None,
                      search_max_distance: float | None = None,
                      include_most_frequent: bool = False, max_conclusions: int | None = None,
                      limit_to_session: bool = False, scope: AsyncScope | str | None = None,
                      sessions: Iterable[AsyncSession | str] | None = None) -> SessionContext:
        ctx: SessionContext = await self._t.unary(self._context(
            tokens, summary, peer_target, peer_perspective, search_query, search_top_k,
            search_max_distance, include_most_frequent, max_conclusions, limit_to_session,
            scope, sessions))
        return ctx

    async def summaries(self) -> Summaries:
        result: Summaries = await self._t.unary(self._summaries())
        return result

    async def representation(self, peer: AsyncPeer | str, *,
                             target: AsyncPeer | str | None = None,
                             search_query: str | None = None, search_top_k: int | None = None,
                             search_max_distance: float | None = None,
                             include_most_frequent: bool | None = None,
                             max_conclusions: int | None = None) -> str:
        """What `peer` holds about `target` (default itself) within this session."""
        return await AsyncPeer(self._honcho, _id(peer)).representation(
            self, target, search_query, search_top_k, search_max_distance,
            include_most_frequent, max_conclusions)

    async def queue_status(self, observer: AsyncPeer | str | None = None,
                           sender: AsyncPeer | str | None = None) -> QueueStatus:
        return await self._honcho.queue_status(observer, sender, self.id)


class AsyncScope(ScopeOps):
    """See `Scope`."""

    def __init__(self, honcho: AsyncHoncho, scope_id: str,
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
        return f"AsyncScope(id={self.id!r}, workspace_id={self.workspace_id!r})"

    async def add_sessions(self, sessions: Iterable[AsyncSession | str]) -> int:
        added: int = await self._t.unary(self._add_sessions(list(sessions)))
        return added

    async def remove_session(self, session: AsyncSession | str) -> bool:
        removed: bool = await self._t.unary(self._remove_session(session))
        return removed

    def sessions(self, *, reverse: bool = False) -> AsyncIterator[AsyncSession]:
        return self._t.pages(self._sessions(reverse,
                                            lambda s: AsyncSession(self._honcho, s.id, s)))

    async def status(self) -> dict[str, ScopeMember]:
        found: dict[str, ScopeMember] = await self._t.unary(self._status())
        return found


class AsyncHoncho(HonchoOps):
    """The asynchronous client for one workspace; arguments as for `Honcho`."""

    def __init__(self, address: str | None = None, workspace_id: str | None = None,
                 token: str | None = None, *, timeout: float | None = DEFAULT_TIMEOUT,
                 stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT,
                 retry: RetryPolicy | None = None, tls: bool | None = None,
                 root_certificates: bytes | None = None,
                 private_key: bytes | None = None, certificate_chain: bytes | None = None,
                 options: Iterable[tuple[str, Any]] | None = None,
                 channel: grpc.aio.Channel | None = None, api_key: str | None = None) -> None:
        settings = Settings.resolve(address, workspace_id, token or api_key, timeout,
                                    stream_timeout, retry, tls, root_certificates, options,
                                    private_key=private_key,
                                    certificate_chain=certificate_chain)
        self.workspace_id = settings.workspace_id
        self._transport = _AsyncTransport(settings, channel)
        self.metadata: dict[str, Any] | None = None
        self.configuration: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (f"AsyncHoncho(address={self._transport.settings.address!r}, "
                f"workspace_id={self.workspace_id!r})")

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncHoncho:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def peer(self, peer_id: str, *, metadata: Mapping[str, Any] | None = None,
                   configuration: Mapping[str, Any] | None = None,
                   create: bool = False) -> AsyncPeer:
        """See `Honcho.peer`: no call unless metadata, configuration or `create`."""
        peer = AsyncPeer(self, peer_id)
        if create or metadata is not None or configuration is not None:
            await peer.get_or_create(metadata=metadata, configuration=configuration)
        return peer

    async def session(self, session_id: str, *, metadata: Mapping[str, Any] | None = None,
                      configuration: Mapping[str, Any] | None = None, peers: Any = None,
                      create: bool = True, scopes: Any = None) -> AsyncSession:
        """The session, got or created now (see Honcho.session)."""
        session = AsyncSession(self, session_id)
        if create or metadata is not None or configuration is not None or peers is not None \
                or scopes is not None:
            await session.get_or_create(metadata=metadata, configuration=configuration,
                                        peers=peers, scopes=scopes)
        return session

    async def scope(self, scope_id: str, *,
                    metadata: Mapping[str, Any] | None = None) -> AsyncScope:
        """The scope, got or created now (see Honcho.scope)."""
        return AsyncScope(self, scope_id, await self._transport.unary(
            self._get_or_create_scope(scope_id, metadata)))

    async def get_scope(self, scope_id: str) -> AsyncScope:
        return AsyncScope(self, scope_id, await self._transport.unary(self._get_scope(scope_id)))

    def scopes(self, *, reverse: bool = False) -> AsyncIterator[AsyncScope]:
        return self._transport.pages(self._list_scopes(reverse,
                                                       lambda s: AsyncScope(self, s.id, s)))

    def peers(self, filters: Mapping[str, Any] | None = None, *,
              reverse: bool = False) -> AsyncIterator[AsyncPeer]:
        return self._transport.pages(self._list_peers(filters, reverse,
                                                      lambda p: AsyncPeer(self, p.id, p)))

    def sessions(self, filters: Mapping[str, Any] | None = None, *,
                 reverse: bool = False) -> AsyncIterator[AsyncSession]:
        return self._transport.pages(self._list_sessions(
            filters, reverse, lambda s: AsyncSession(self, s.id, s)))

    async def search(self, query: str, filters: Mapping[str, Any] | None = None,
                     limit: int | None = None, *, scope: Any = None) -> list[Message]:
        hits: list[Message] = await self._transport.unary(self._search(query, filters, limit,
                                                                       scope=scope))
        return hits

    async def refresh(self) -> AsyncHoncho:
        """Reload the workspace's metadata and configuration (NotFoundError if missing)."""
        self.metadata, self.configuration = resource_fields(
            await self._transport.unary(self._get_workspace()))
        return self

    async def get_metadata(self) -> dict[str, Any]:
        return resource_fields(await self._transport.unary(self._get_or_create_workspace()))[0]

    async def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        await self._transport.unary(self._get_or_create_workspace())
        await self._transport.unary(self._update_workspace(metadata, None))

    async def get_configuration(self) -> dict[str, Any]:
        return resource_fields(await self._transport.unary(self._get_or_create_workspace()))[1]

    async def set_configuration(self, configuration: Mapping[str, Any]) -> None:
        await self._transport.unary(self._get_or_create_workspace())
        await self._transport.unary(self._update_workspace(None, configuration))

    def workspaces(self, filters: Mapping[str, Any] | None = None, *,
                   reverse: bool = False) -> AsyncIterator[str]:
        return self._transport.pages(self._list_workspaces(filters, reverse))

    async def delete_workspace(self, workspace_id: str | None = None) -> None:
        await self._transport.unary(self._delete_workspace(workspace_id))

    async def queue_status(self, observer: AsyncPeer | str | None = None,
                           sender: AsyncPeer | str | None = None,
                           session: AsyncSession | str | None = None) -> QueueStatus:
        status: QueueStatus = await self._transport.unary(self._queue_status(
            session, observer, sender))
        return status

    async def wait_until_idle(self, *, session: AsyncSession | str | None = None,
                              observer: AsyncPeer | str | None = None,
                              timeout: float = 60.0,  # noqa: ASYNC109 (same API as sync)
                              interval: float = 0.25) -> QueueStatus:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = await self.queue_status(observer, session=session)
            if status.totals.idle:
                return status
            if loop.time() >= deadline:
                raise TimeoutError(f"queue still busy after {timeout}s: {status.totals}")
            await asyncio.sleep(interval)

    async def schedule_dream(self, observer: AsyncPeer | str,
                             session: AsyncSession | str | None = None,
                             observed: AsyncPeer | str | None = None, *,
                             dream_type: str = "omni") -> bool:
        """See `Honcho.schedule_dream` (Honcho's order: observer, session, observed)."""
        if isinstance(session, PeerOps):
            raise TypeError("schedule_dream(observer, session, observed): the second argument "
                            f"is the session, got the peer {session.id!r}; pass observed=")
        queued: bool = await self._transport.unary(self._schedule_dream(
            observer, observed, session, dream_type))
        return queued

    def events(self, *, session: AsyncSession | str | None = None,
               peer: AsyncPeer | str | None = None,
               types: Iterable[str] | None = None) -> AsyncEventStream:
        """`async with honcho.events() as feed: await feed.ready(); async for e in feed:`."""
        return AsyncEventStream(self._transport, self._watch_events(session, peer, types))

    @property
    def conclusions(self) -> AsyncWorkspaceConclusions:
        """`async for c in honcho.conclusions(filters=...)`, or `.list(...)`."""
        return AsyncWorkspaceConclusions(self)

    async def delete_conclusion(self, conclusion_id: str) -> None:
        await self._transport.unary(self._delete_conclusion(conclusion_id))

    async def create_key(self, *, peer: AsyncPeer | str | None = None,
                         session: AsyncSession | str | None = None,
                         expires_at: dt.datetime | None = None, admin: bool = False) -> str:
        key: str = await self._transport.unary(self._create_key(peer, session, expires_at,
                                                                admin))
        return key

    async def create_webhook(self, url: str) -> WebhookEndpoint:
        endpoint: WebhookEndpoint = await self._transport.unary(self._create_webhook(url))
        return endpoint

    def webhooks(self) -> AsyncIterator[WebhookEndpoint]:
        return self._transport.pages(self._list_webhooks())

    async def delete_webhook(self, endpoint: WebhookEndpoint | str) -> None:
        await self._transport.unary(self._delete_webhook(endpoint))

    async def test_webhook(self) -> None:
        await self._transport.unary(self._test_webhook())
