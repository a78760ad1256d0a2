"""What the sync and async clients share: channel settings and, for every operation, the
request to send and how to read the answer. `client.py` and `aio.py` only execute them."""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    conclusion_pb2_grpc,
    dialectic_pb2,
    dialectic_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    key_pb2,
    key_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    resources_pb2,
    scope_pb2,
    scope_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    webhook_pb2,
    webhook_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from honcho_grpc_client.types import (
    EVENT_TYPES,
    REASONING_LEVELS,
    ChatAnswer,
    Conclusion,
    ConclusionCreate,
    Event,
    Message,
    MessageCreate,
    PeerContext,
    QueueCounts,
    QueueStatus,
    ScopeMember,
    SessionContext,
    SessionMember,
    SessionPeerConfig,
    Summaries,
    WebhookEndpoint,
    dict_to_struct,
    message_to_dict,
    parse_into,
    struct_to_dict,
    to_datetime,
    to_timestamp,
)

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TIMEOUT = 30.0  # seconds, unary calls
DEFAULT_STREAM_TIMEOUT = 300.0  # seconds, streamed chat, imports and uploads
MAX_BATCH = 100  # CreateMessages accepts 1-100 messages per call
PAGE_SIZE = 100
UPLOAD_CHUNK = 64 * 1024

STUBS: dict[str, Callable[[Any], Any]] = {
    "workspaces": workspace_pb2_grpc.WorkspaceServiceStub,
    "peers": peer_pb2_grpc.PeerServiceStub,
    "sessions": session_pb2_grpc.SessionServiceStub,
    "messages": message_pb2_grpc.MessageServiceStub,
    "search": search_pb2_grpc.SearchServiceStub,
    "conclusions": conclusion_pb2_grpc.ConclusionServiceStub,
    "dialectic": dialectic_pb2_grpc.DialecticServiceStub,
    "webhooks": webhook_pb2_grpc.WebhookServiceStub,
    "events": event_pb2_grpc.EventServiceStub,
    "keys": key_pb2_grpc.KeyServiceStub,
    "scopes": scope_pb2_grpc.ScopeServiceStub,
}

SERVICE_NAMES = [
    service.full_name
    for module in (workspace_pb2, peer_pb2, session_pb2, message_pb2, search_pb2,
                   conclusion_pb2, dialectic_pb2, webhook_pb2, event_pb2, key_pb2, scope_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's own retry (service config): UNAVAILABLE only, exponential backoff with jitter.

    Retries happen inside the channel, before any response message reached the caller, so a
    streamed answer is never replayed half-way. Writes the client sends carry a generated
    `request_id`, so a retried write that had in fact committed is answered from the
    server's idempotency record instead of being written twice.
    """

    max_attempts: int = 5  # gRPC caps this at 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0

    def service_config(self) -> str:
        if self.max_attempts <= 1:
            return json.dumps({"methodConfig": []})
        return json.dumps({"methodConfig": [{
            "name": [{"service": name} for name in SERVICE_NAMES],
            "retryPolicy": {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff}s",
                "maxBackoff": f"{self.max_backoff}s",
                "backoffMultiplier": self.backoff_multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]})


NO_RETRY = RetryPolicy(max_attempts=1)


def channel_options(retry: RetryPolicy,
                    extra: Iterable[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    options: dict[str, Any] = {
        "grpc.enable_retries": 1 if retry.max_attempts > 1 else 0,
        "grpc.service_config": retry.service_config(),
        "grpc.max_receive_message_length": 16 * 1024 * 1024,
        "grpc.max_send_message_length": 8 * 1024 * 1024,
        # Ping quiet connections (long streams behind proxies); the server allows one per 10 s.
        "grpc.keepalive_time_ms": 30_000,
        "grpc.keepalive_timeout_ms": 10_000,
        "grpc.primary_user_agent": "honcho-grpc-client-python/0.1.0",
    }
    options.update(dict(extra))
    return list(options.items())


@dataclass
class Settings:
    """Resolved constructor arguments (explicit > environment > default)."""

    address: str
    workspace_id: str
    token: str | None
    timeout: float | None
    stream_timeout: float | None
    retry: RetryPolicy
    tls: bool
    root_certificates: bytes | None
    options: list[tuple[str, Any]] = field(default_factory=list)
    # mTLS: this client's PEM key and certificate chain, for servers that ask for one.
    private_key: bytes | None = None
    certificate_chain: bytes | None = None

    @classmethod
    def resolve(cls, address: str | None, workspace_id: str | None, token: str | None,
                timeout: float | None, stream_timeout: float | None,
                retry: RetryPolicy | None, tls: bool | None, root_certificates: bytes | None,
                options: Iterable[tuple[str, Any]] | None, *, private_key: bytes | None = None,
                certificate_chain: bytes | None = None) -> Settings:
        address = address or os.environ.get("HONCHO_ADDRESS") or DEFAULT_ADDRESS
        workspace_id = workspace_id or os.environ.get("HONCHO_WORKSPACE_ID") or "default"
        token = token or os.environ.get("HONCHO_API_KEY") or None
        retry = retry or RetryPolicy()
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("private_key and certificate_chain go together (a client "
                             "certificate for mTLS)")
        return cls(address=address, workspace_id=workspace_id, token=token, timeout=timeout,
                   stream_timeout=stream_timeout, retry=retry,
                   tls=bool(tls) or root_certificates is not None or private_key is not None,
                   root_certificates=root_certificates,
                   options=channel_options(retry, options or ()),
                   private_key=private_key, certificate_chain=certificate_chain)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if not self.token:
            return ()
        return (("authorization", f"Bearer {self.token}"),)

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates,
                                            private_key=self.private_key,
                                            certificate_chain=self.certificate_chain)


# --------------------------------------------------------------------------- operations


@dataclass
class Unary:
    service: str
    method: str
    request: Any
    read: Callable[[Any], Any] = lambda r: r


@dataclass
class Paged:
    """A List* call: `items` reads one page; the executor follows next_page_token."""

    service: str
    method: str
    request: Any
    items: Callable[[Any], Iterable[Any]]


@dataclass
class ServerStream:
    service: str
    method: str
    request: Any
    read: Callable[[Any], Any] = lambda r: r


@dataclass
class ClientStream:
    service: str
    method: str
    requests: Iterable[Any]
    read: Callable[[Any], Any] = lambda r: r


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def request_id() -> str:
    return str(uuid.uuid4())


def _id(value: Any) -> str:
    """A peer or session given as its handle or as its id."""
    return value if isinstance(value, str) else str(value.id)


def _opt_id(value: Any) -> str:
    return "" if value is None else _id(value)


def _members(peers: Any) -> dict[str, resources_pb2.SessionPeerConfiguration]:
    """Peers as a dict {peer: config}, a peer, or an iterable of peers / (peer, config)."""
    out: dict[str, resources_pb2.SessionPeerConfiguration] = {}
    if isinstance(peers, Mapping):
        items: Iterable[Any] = peers.items()
    elif isinstance(peers, str) or hasattr(peers, "id"):
        items = [peers]
    else:
        items = peers
    for item in items:
        peer, config = item if isinstance(item, tuple) else (item, None)
        if config is None:
            proto = resources_pb2.SessionPeerConfiguration()
        elif isinstance(config, SessionPeerConfig):
            proto = config.to_proto()
        else:
            proto = parse_into(config, resources_pb2.SessionPeerConfiguration)
        out[_id(peer)] = proto
    return out


def _batches(messages: Any) -> list[list[message_pb2.MessageInput]]:
    if isinstance(messages, MessageCreate):
        messages = [messages]
    inputs = [m.to_proto() if isinstance(m, MessageCreate) else m for m in messages]
    return [inputs[i:i + MAX_BATCH] for i in range(0, len(inputs), MAX_BATCH)]


def _members_of(r: Any) -> list[SessionMember]:
    return [SessionMember.from_proto(p) for p in r.peers]


def _hits(r: search_pb2.SearchMessagesResponse) -> list[Message]:
    return [Message.from_proto(h.message, score=h.score) for h in r.hits]


def _queue_status(r: workspace_pb2.GetQueueStatusResponse) -> QueueStatus:
    return QueueStatus(totals=QueueCounts.from_proto(r.totals),
                       sessions={k: QueueCounts.from_proto(v) for k, v in r.sessions.items()},
                       embedding_pending=r.embedding.pending,
                       embedding_oldest_age=r.embedding.oldest_age.ToTimedelta().total_seconds())


def reasoning_level(level: str | int | None) -> int:
    if level is None:
        return dialectic_pb2.REASONING_LEVEL_UNSPECIFIED
    if isinstance(level, int):
        return level
    try:
        return REASONING_LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"reasoning_level must be one of {sorted(REASONING_LEVELS)}") from None


class HonchoOps:
    """Workspace-level operations."""

    workspace_id: str

    def _get_or_create_workspace(self, metadata: Mapping[str, Any] | None = None,
                                 configuration: Any = None) -> Unary:
        return Unary("workspaces", "GetOrCreateWorkspace",
                     workspace_pb2.GetOrCreateWorkspaceRequest(
                         workspace_id=self.workspace_id, metadata=dict_to_struct(metadata),
                         configuration=parse_into(configuration, resources_pb2.Configuration)),
                     lambda r: r.workspace)

    def _get_workspace(self) -> Unary:
        return Unary("workspaces", "GetWorkspace", workspace_pb2.GetWorkspaceRequest(
            workspace_id=self.workspace_id), lambda r: r.workspace)

    def _update_workspace(self, metadata: Mapping[str, Any] | None = None,
                          configuration: Any = None) -> Unary:
        ws = resources_pb2.Workspace(id=self.workspace_id)
        paths = []
        if metadata is not None:
            ws.metadata.update(dict(metadata))
            paths.append("metadata")
        if configuration is not None:
            ws.configuration.CopyFrom(parse_into(configuration, resources_pb2.Configuration))
            paths.append("configuration")
        return Unary("workspaces", "UpdateWorkspace",
                     workspace_pb2.UpdateWorkspaceRequest(workspace=ws, update_mask=_mask(*paths)),
                     lambda r: r.workspace)

    def _list_workspaces(self, filters: Mapping[str, Any] | None, reverse: bool) -> Paged:
        return Paged("workspaces", "ListWorkspaces", workspace_pb2.ListWorkspacesRequest(
            page_size=PAGE_SIZE, filters=dict_to_struct(filters), reverse=reverse),
            lambda r: [w.id for w in r.workspaces])

    def _delete_workspace(self, workspace_id: str | None) -> Unary:
        return Unary("workspaces", "DeleteWorkspace", workspace_pb2.DeleteWorkspaceRequest(
            workspace_id=workspace_id or self.workspace_id, request_id=request_id()),
            lambda r: None)

    def _list_peers(self, filters: Mapping[str, Any] | None, reverse: bool,
                    make: Callable[[resources_pb2.Peer], Any]) -> Paged:
        return Paged("peers", "ListPeers", peer_pb2.ListPeersRequest(
            workspace_id=self.workspace_id, page_size=PAGE_SIZE,
            filters=dict_to_struct(filters), reverse=reverse),
            lambda r: [make(p) for p in r.peers])

    def _list_sessions(self, filters: Mapping[str, Any] | None, reverse: bool,
                       make: Callable[[resources_pb2.Session], Any]) -> Paged:
        return Paged("sessions", "ListSessions", session_pb2.ListSessionsRequest(
            workspace_id=self.workspace_id, page_size=PAGE_SIZE,
            filters=dict_to_struct(filters), reverse=reverse),
            lambda r: [make(s) for s in r.sessions])

    def _search(self, query: str, filters: Mapping[str, Any] | None, limit: int | None,
                session_id: str | None = None, peer_id: str | None = None,
                scope: Any = None) -> Unary:
        req = search_pb2.SearchMessagesRequest(workspace_id=self.workspace_id, query=query,
                                               filters=dict_to_struct(filters), limit=limit or 0,
                                               scope_id=_opt_id(scope))
        if session_id:
            req.session_id = session_id
        elif peer_id:
            req.peer_id = peer_id
        return Unary("search", "SearchMessages", req, _hits)

    def _queue_status(self, session: Any, observer: Any, sender: Any) -> Unary:
        return Unary("workspaces", "GetQueueStatus", workspace_pb2.GetQueueStatusRequest(
            workspace_id=self.workspace_id, session_id=_opt_id(session),
            observer_id=_opt_id(observer), sender_id=_opt_id(sender)), _queue_status)

    def _schedule_dream(self, observer: Any, observed: Any, session: Any,
                        dream_type: str) -> Unary:
        kinds = {"omni": workspace_pb2.DREAM_TYPE_OMNI,
                 "card_refresh": workspace_pb2.DREAM_TYPE_CARD_REFRESH}
        if dream_type not in kinds:
            raise ValueError(f"dream_type must be one of {sorted(kinds)}")
        return Unary("workspaces", "ScheduleDream", workspace_pb2.ScheduleDreamRequest(
            workspace_id=self.workspace_id, observer_id=_id(observer),
            observed_id=_opt_id(observed) or _id(observer), dream_type=kinds[dream_type],
            session_id=_opt_id(session)), lambda r: r.queued)

    def _watch_events(self, session: Any, peer: Any, types: Iterable[str] | None
                      ) -> ServerStream:
        try:
            kinds = [EVENT_TYPES[t] for t in types or ()]
        except KeyError as e:
            raise ValueError(f"event types are {sorted(EVENT_TYPES)}") from e
        return ServerStream("events", "WatchEvents", event_pb2.WatchEventsRequest(
            workspace_id=self.workspace_id, session_id=_opt_id(session),
            peer_id=_opt_id(peer), types=kinds), lambda r: Event.from_proto(r.event))

    def _delete_conclusion(self, conclusion_id: str) -> Unary:
        return Unary("conclusions", "DeleteConclusion", conclusion_pb2.DeleteConclusionRequest(
            workspace_id=self.workspace_id, conclusion_id=conclusion_id), lambda r: None)

    def _list_conclusions(self, filters: Mapping[str, Any] | None, reverse: bool,
                          include_invalid: bool) -> Paged:
        return Paged("conclusions", "ListConclusions", conclusion_pb2.ListConclusionsRequest(
            workspace_id=self.workspace_id, page_size=PAGE_SIZE,
            filters=dict_to_struct(filters), reverse=reverse, include_invalid=include_invalid),
            lambda r: [Conclusion.from_proto(c) for c in r.conclusions])

    def _create_webhook(self, url: str) -> Unary:
        return Unary("webhooks", "CreateWebhookEndpoint",
                     webhook_pb2.CreateWebhookEndpointRequest(workspace_id=self.workspace_id,
                                                              url=url),
                     lambda r: WebhookEndpoint.from_proto(r.endpoint))

    def _list_webhooks(self) -> Paged:
        return Paged("webhooks", "ListWebhookEndpoints", webhook_pb2.ListWebhookEndpointsRequest(
            workspace_id=self.workspace_id, page_size=PAGE_SIZE),
            lambda r: [WebhookEndpoint.from_proto(w) for w in r.endpoints])

    def _delete_webhook(self, endpoint: Any) -> Unary:
        return Unary("webhooks", "DeleteWebhookEndpoint",
                     webhook_pb2.DeleteWebhookEndpointRequest(workspace_id=self.workspace_id,
                                                              endpoint_id=_id(endpoint)),
                     lambda r: None)

    def _test_webhook(self) -> Unary:
        return Unary("webhooks", "TestWebhook",
                     webhook_pb2.TestWebhookRequest(workspace_id=self.workspace_id),
                     lambda r: None)

    def _get_or_create_scope(self, scope_id: str, metadata: Mapping[str, Any] | None) -> Unary:
        return Unary("scopes", "GetOrCreateScope", scope_pb2.GetOrCreateScopeRequest(
            workspace_id=self.workspace_id, scope_id=scope_id,
            metadata=dict_to_struct(metadata)), lambda r: r.scope)

    def _get_scope(self, scope_id: str) -> Unary:
        return Unary("scopes", "GetScope", scope_pb2.GetScopeRequest(
            workspace_id=self.workspace_id, scope_id=scope_id), lambda r: r.scope)

    def _list_scopes(self, reverse: bool, make: Callable[[scope_pb2.Scope], Any]) -> Paged:
        return Paged("scopes", "ListScopes", scope_pb2.ListScopesRequest(
            workspace_id=self.workspace_id, page_size=PAGE_SIZE, reverse=reverse),
            lambda r: [make(s) for s in r.scopes])

    def _create_key(self, peer: Any, session: Any, expires_at: Any, admin: bool) -> Unary:
        return Unary("keys", "CreateKey", key_pb2.CreateKeyRequest(
            workspace_id="" if admin else self.workspace_id, peer_id=_opt_id(peer),
            session_id=_opt_id(session), expire_time=to_timestamp(expires_at), admin=admin),
            lambda r: r.key)


class PeerOps:
    """Operations on one peer (`self.id`)."""

    id: str
    workspace_id: str

    def message(self, content: str, *, metadata: Mapping[str, Any] | None = None,
                configuration: Mapping[str, Any] | None = None,
                created_at: Any = None) -> MessageCreate:
        """A message by this peer, for `session.add_messages([...])`."""
        return MessageCreate(peer_id=self.id, content=content, metadata=metadata,
                             configuration=configuration, created_at=created_at)

    def _get_or_create(self, metadata: Mapping[str, Any] | None, configuration: Any) -> Unary:
        return Unary("peers", "GetOrCreatePeer", peer_pb2.GetOrCreatePeerRequest(
            workspace_id=self.workspace_id, peer_id=self.id, metadata=dict_to_struct(metadata),
            configuration=parse_into(configuration, resources_pb2.PeerConfiguration)),
            lambda r: r.peer)

    def _get(self) -> Unary:
        return Unary("peers", "GetPeer", peer_pb2.GetPeerRequest(
            workspace_id=self.workspace_id, peer_id=self.id), lambda r: r.peer)

    def _update(self, metadata: Mapping[str, Any] | None, configuration: Any) -> Unary:
        peer = resources_pb2.Peer(workspace_id=self.workspace_id, id=self.id)
        paths = []
        if metadata is not None:
            peer.metadata.update(dict(metadata))
            paths.append("metadata")
        if configuration is not None:
            peer.configuration.CopyFrom(parse_into(configuration,
                                                   resources_pb2.PeerConfiguration))
            paths.append("configuration")
        return Unary("peers", "UpdatePeer", peer_pb2.UpdatePeerRequest(
            peer=peer, update_mask=_mask(*paths)), lambda r: r.peer)

    def _delete(self) -> Unary:
        return Unary("peers", "DeletePeer", peer_pb2.DeletePeerRequest(
            workspace_id=self.workspace_id, peer_id=self.id, request_id=request_id()),
            lambda r: None)

    def _sessions(self, filters: Mapping[str, Any] | None, reverse: bool,
                  make: Callable[[resources_pb2.Session], Any]) -> Paged:
        return Paged("peers", "ListPeerSessions", peer_pb2.ListPeerSessionsRequest(
            workspace_id=self.workspace_id, peer_id=self.id, page_size=PAGE_SIZE,
            filters=dict_to_struct(filters), reverse=reverse),
            lambda r: [make(s) for s in r.sessions])

    def _card(self, target: Any) -> Unary:
        return Unary("peers", "GetPeerCard", peer_pb2.GetPeerCardRequest(
            workspace_id=self.workspace_id, peer_id=self.id, target_id=_opt_id(target)),
            lambda r: list(r.entries))

    def _set_card(self, entries: Iterable[str], target: Any) -> Unary:
        return Unary("peers", "SetPeerCard", peer_pb2.SetPeerCardRequest(
            workspace_id=self.workspace_id, peer_id=self.id, target_id=_opt_id(target),
            entries=list(entries)), lambda r: list(r.entries))

    def _representation(self, target: Any, session: Any, search_query: str | None,
                        search_top_k: int | None, search_max_distance: float | None,
                        include_most_frequent: bool, max_conclusions: int | None,
                        scope: Any = None, sessions: Any = None) -> Unary:
        return Unary("peers", "GetRepresentation", peer_pb2.GetRepresentationRequest(
            workspace_id=self.workspace_id, peer_id=self.id, target_id=_opt_id(target),
            session_id=_opt_id(session), search_query=search_query or "",
            search_top_k=search_top_k or 0, search_max_distance=search_max_distance or 0.0,
            include_most_frequent=include_most_frequent, max_conclusions=max_conclusions or 0,
            scope_ids=scope_ids(scope), session_ids=_ids(sessions)),
            lambda r: r.representation)

    def _context(self, target: Any, search_query: str | None, search_top_k: int | None,
                 search_max_distance: float | None, include_most_frequent: bool | None,
                 max_conclusions: int | None) -> Unary:
        return Unary("peers", "GetPeerContext", peer_pb2.GetPeerContextRequest(
            workspace_id=self.workspace_id, peer_id=self.id, target_id=_opt_id(target),
            search_query=search_query or "", search_top_k=search_top_k or 0,
            search_max_distance=search_max_distance or 0.0,
            include_most_frequent=include_most_frequent, max_conclusions=max_conclusions or 0),
            lambda r: PeerContext(peer_id=r.peer_id, target_id=r.target_id,
                                  representation=r.representation, peer_card=list(r.peer_card)))

    def _chat_query(self, query: str, target: Any, session: Any, reasoning: str | int | None,
                    response_format: Mapping[str, Any] | None, scope: Any = None,
                    sessions: Any = None) -> dialectic_pb2.ChatQuery:
        return dialectic_pb2.ChatQuery(
            workspace_id=self.workspace_id, peer_id=self.id, query=query,
            target_id=_opt_id(target), session_id=_opt_id(session),
            reasoning_level=reasoning_level(reasoning),  # type: ignore[arg-type]
            response_format=dict_to_struct(response_format), scope_ids=scope_ids(scope),
            session_ids=_ids(sessions))

    def _chat(self, query: dialectic_pb2.ChatQuery) -> Unary:
        return Unary("dialectic", "Chat", dialectic_pb2.ChatRequest(query=query), ChatAnswer)

    def _stream_chat(self, query: dialectic_pb2.ChatQuery) -> ServerStream:
        return ServerStream("dialectic", "StreamChat",
                            dialectic_pb2.StreamChatRequest(query=query))

    def _list_conclusions(self, about: Any, session: Any, filters: Mapping[str, Any] | None,
                          reverse: bool, include_invalid: bool) -> Paged:
        where: dict[str, Any] = {"observer_id": self.id, "observed_id": _opt_id(about) or self.id}
        if session is not None:
            where["session_id"] = _id(session)
        combined = {"AND": [where, dict(filters)]} if filters else where
        return Paged("conclusions", "ListConclusions", conclusion_pb2.ListConclusionsRequest(
            workspace_id=self.workspace_id, page_size=PAGE_SIZE,
            filters=dict_to_struct(combined), reverse=reverse, include_invalid=include_invalid),
            lambda r: [Conclusion.from_proto(c) for c in r.conclusions])

    def _query_conclusions(self, query: str, about: Any, top_k: int | None,
                           max_distance: float | None,
                           filters: Mapping[str, Any] | None) -> Unary:
        return Unary("conclusions", "QueryConclusions", conclusion_pb2.QueryConclusionsRequest(
            workspace_id=self.workspace_id, observer_id=self.id,
            observed_id=_opt_id(about) or self.id, query=query, top_k=top_k or 0,
            max_distance=max_distance or 0.0, filters=dict_to_struct(filters)),
            lambda r: [Conclusion.from_proto(c) for c in r.conclusions])

    def _create_conclusions(self, conclusions: Iterable[str | ConclusionCreate], about: Any,
                            session: Any) -> Unary:
        items = [ConclusionCreate(c, observed_id=_opt_id(about), session_id=_opt_id(session))
                 if isinstance(c, str) else c for c in conclusions]
        return Unary("conclusions", "CreateConclusions", conclusion_pb2.CreateConclusionsRequest(
            workspace_id=self.workspace_id, conclusions=[c.to_proto(self.id) for c in items],
            request_id=request_id()),
            lambda r: [Conclusion.from_proto(c) for c in r.conclusions])


class SessionOps:
    """Operations on one session (`self.id`)."""

    id: str
    workspace_id: str

    def _get_or_create(self, metadata: Mapping[str, Any] | None, configuration: Any,
                       peers: Any, scopes: Any = None) -> Unary:
        return Unary("sessions", "GetOrCreateSession", session_pb2.GetOrCreateSessionRequest(
            workspace_id=self.workspace_id, session_id=self.id,
            metadata=dict_to_struct(metadata),
            configuration=parse_into(configuration, resources_pb2.Configuration),
            peers=_members(peers or ()), scope_ids=_ids(scopes)), lambda r: r.session)

    def _get(self) -> Unary:
        return Unary("sessions", "GetSession", session_pb2.GetSessionRequest(
            workspace_id=self.workspace_id, session_id=self.id), lambda r: r.session)

    def _update(self, metadata: Mapping[str, Any] | None, configuration: Any) -> Unary:
        session = resources_pb2.Session(workspace_id=self.workspace_id, id=self.id)
        paths = []
        if metadata is not None:
            session.metadata.update(dict(metadata))
            paths.append("metadata")
        if configuration is not None:
            session.configuration.CopyFrom(parse_into(configuration,
                                                      resources_pb2.Configuration))
            paths.append("configuration")
        return Unary("sessions", "UpdateSession", session_pb2.UpdateSessionRequest(
            session=session, update_mask=_mask(*paths)), lambda r: r.session)

    def _delete(self) -> Unary:
        return Unary("sessions", "DeleteSession", session_pb2.DeleteSessionRequest(
            workspace_id=self.workspace_id, session_id=self.id, request_id=request_id()),
            lambda r: None)

    def _clone(self, message_id: str | None, new_session_id: str | None) -> Unary:
        return Unary("sessions", "CloneSession", session_pb2.CloneSessionRequest(
            workspace_id=self.workspace_id, session_id=self.id, message_id=message_id or "",
            new_session_id=new_session_id or "", request_id=request_id()),
            lambda r: r.session)

    def _add_peers(self, peers: Any) -> Unary:
        return Unary("sessions", "AddPeers", session_pb2.AddPeersRequest(
            workspace_id=self.workspace_id, session_id=self.id, peers=_members(peers)),
            _members_of)

    def _set_peers(self, peers: Any) -> Unary:
        return Unary("sessions", "SetPeers", session_pb2.SetPeersRequest(
            workspace_id=self.workspace_id, session_id=self.id, peers=_members(peers)),
            _members_of)

    def _remove_peers(self, peers: Any) -> Unary:
        ids = [_id(peers)] if isinstance(peers, str) or hasattr(peers, "id") else \
            [_id(p) for p in peers]
        return Unary("sessions", "RemovePeers", session_pb2.RemovePeersRequest(
            workspace_id=self.workspace_id, session_id=self.id, peer_ids=ids), _members_of)

    def _members(self, include_inactive: bool) -> Paged:
        return Paged("sessions", "ListSessionPeers", session_pb2.ListSessionPeersRequest(
            workspace_id=self.workspace_id, session_id=self.id, page_size=PAGE_SIZE,
            include_inactive=include_inactive), _members_of)

    def _peer_config(self, peer: Any) -> Unary:
        return Unary("sessions", "GetSessionPeerConfig", session_pb2.GetSessionPeerConfigRequest(
            workspace_id=self.workspace_id, session_id=self.id, peer_id=_id(peer)),
            lambda r: SessionPeerConfig.from_proto(r.configuration))

    def _set_peer_config(self, peer: Any, config: SessionPeerConfig) -> Unary:
        return Unary("sessions", "SetSessionPeerConfig", session_pb2.SetSessionPeerConfigRequest(
            workspace_id=self.workspace_id, session_id=self.id, peer_id=_id(peer),
            configuration=config.to_proto()),
            lambda r: SessionPeerConfig.from_proto(r.configuration))

    def _create_batches(self, messages: Any) -> list[Unary]:
        return [Unary("messages", "CreateMessages", message_pb2.CreateMessagesRequest(
            workspace_id=self.workspace_id, session_id=self.id, messages=batch,
            request_id=request_id()), lambda r: [Message.from_proto(m) for m in r.messages])
            for batch in _batches(messages)]

    def _import_requests(self, messages: Iterable[Any],
                         chunk_size: int) -> Iterator[message_pb2.ImportMessagesRequest]:
        chunk: list[message_pb2.MessageInput] = []
        for m in messages:
            chunk.append(m.to_proto() if isinstance(m, MessageCreate) else m)
            if len(chunk) >= chunk_size:
                yield message_pb2.ImportMessagesRequest(
                    workspace_id=self.workspace_id, session_id=self.id, messages=chunk)
                chunk = []
        if chunk:
            yield message_pb2.ImportMessagesRequest(
                workspace_id=self.workspace_id, session_id=self.id, messages=chunk)

    def _import(self, messages: Iterable[Any], chunk_size: int) -> ClientStream:
        return ClientStream("messages", "ImportMessages",
                            self._import_requests(messages, min(max(chunk_size, 1), 1000)),
                            lambda r: r.imported_count)

    def _upload(self, data: bytes, peer: Any, filename: str, content_type: str,
                metadata: Mapping[str, Any] | None, configuration: Any,
                created_at: Any) -> ClientStream:
        def parts() -> Iterator[message_pb2.UploadFileRequest]:
            yield message_pb2.UploadFileRequest(header=message_pb2.UploadFileHeader(
                workspace_id=self.workspace_id, session_id=self.id, peer_id=_id(peer),
                filename=filename, content_type=content_type, metadata=dict_to_struct(metadata),
                configuration=parse_into(configuration, resources_pb2.MessageConfiguration),
                create_time=to_timestamp(created_at)))
            for i in range(0, len(data), UPLOAD_CHUNK):
                yield message_pb2.UploadFileRequest(chunk=data[i:i + UPLOAD_CHUNK])

        return ClientStream("messages", "UploadFile", parts(),
                            lambda r: [Message.from_proto(m) for m in r.messages])

    def _list_messages(self, filters: Mapping[str, Any] | None, reverse: bool,
                       page_size: int) -> Paged:
        return Paged("messages", "ListMessages", message_pb2.ListMessagesRequest(
            workspace_id=self.workspace_id, session_id=self.id, page_size=page_size,
            filters=dict_to_struct(filters), reverse=reverse),
            lambda r: [Message.from_proto(m) for m in r.messages])

    def _get_message(self, message_id: str) -> Unary:
        return Unary("messages", "GetMessage", message_pb2.GetMessageRequest(
            workspace_id=self.workspace_id, session_id=self.id, message_id=message_id),
            lambda r: Message.from_proto(r.message))

    def _update_message(self, message_id: str, metadata: Mapping[str, Any]) -> Unary:
        return Unary("messages", "UpdateMessage", message_pb2.UpdateMessageRequest(
            message=resources_pb2.Message(workspace_id=self.workspace_id, session_id=self.id,
                                          id=message_id, metadata=dict_to_struct(metadata)),
            update_mask=_mask("metadata")), lambda r: Message.from_proto(r.message))

    def _delete_message(self, message_id: str) -> Unary:
        return Unary("messages", "DeleteMessage", message_pb2.DeleteMessageRequest(
            workspace_id=self.workspace_id, session_id=self.id, message_id=message_id,
            request_id=request_id()), lambda r: None)

    def _context(self, tokens: int | None, summary: bool, peer_target: Any,
                 peer_perspective: Any, search_query: str | None, search_top_k: int | None,
                 search_max_distance: float | None, include_most_frequent: bool,
                 max_conclusions: int | None, limit_to_session: bool, scope: Any = None,
                 sessions: Any = None) -> Unary:
        return Unary("sessions", "GetContext", session_pb2.GetContextRequest(
            workspace_id=self.workspace_id, session_id=self.id, tokens=tokens or 0,
            summary=summary, peer_target=_opt_id(peer_target),
            peer_perspective=_opt_id(peer_perspective), search_query=search_query or "",
            search_top_k=search_top_k or 0, search_max_distance=search_max_distance or 0.0,
            include_most_frequent=include_most_frequent, max_conclusions=max_conclusions or 0,
            limit_to_session=limit_to_session, scope_id=_opt_id(scope),
            session_ids=_ids(sessions)), SessionContext.from_proto)

    def _summaries(self) -> Unary:
        return Unary("sessions", "GetSummaries", session_pb2.GetSummariesRequest(
            workspace_id=self.workspace_id, session_id=self.id), Summaries.from_proto)


class ScopeOps:
    """Operations on one scope (`self.id`): a named set of sessions that reads can be
    confined to (`scope=` on chat, representation, context and search)."""

    id: str
    workspace_id: str

    def _add_sessions(self, sessions: Any) -> Unary:
        return Unary("scopes", "AddScopeSessions", scope_pb2.AddScopeSessionsRequest(
            workspace_id=self.workspace_id, scope_id=self.id, session_ids=_ids(sessions)),
            lambda r: r.added)

    def _remove_session(self, session: Any) -> Unary:
        return Unary("scopes", "RemoveScopeSession", scope_pb2.RemoveScopeSessionRequest(
            workspace_id=self.workspace_id, scope_id=self.id, session_id=_id(session)),
            lambda r: r.removed)

    def _sessions(self, reverse: bool, make: Callable[[resources_pb2.Session], Any]) -> Paged:
        return Paged("scopes", "ListScopeSessions", scope_pb2.ListScopeSessionsRequest(
            workspace_id=self.workspace_id, scope_id=self.id, page_size=PAGE_SIZE,
            reverse=reverse), lambda r: [make(s) for s in r.sessions])

    def _status(self) -> Unary:
        return Unary("scopes", "GetScopeStatus", scope_pb2.GetScopeStatusRequest(
            workspace_id=self.workspace_id, scope_id=self.id),
            lambda r: {m.session_id: ScopeMember(
                m.session_id, to_datetime(m.add_time, m.HasField("add_time")), m.conclusions)
                for m in r.sessions})


def _ids(values: Any) -> list[str]:
    """Sessions or scopes given as handles or ids (None: none)."""
    if values is None:
        return []
    if isinstance(values, str) or hasattr(values, "id"):
        return [_id(values)]
    return [_id(v) for v in values]


def scope_ids(scope: Any) -> list[str]:
    """Honcho's `scope=` option: one scope (id or handle) or a list of them."""
    return _ids(scope)


def session_and_target(session: Any, target: Any) -> tuple[Any, Any]:
    """`peer.representation(session, target)`, in the order of Honcho's SDK. The first
    argument used to be the target: a peer handle there (it can never be a session) is still
    taken as the target, with a DeprecationWarning; an id string cannot be told apart and
    means the session."""
    if not isinstance(session, PeerOps):
        return session, target
    if target is not None:
        raise TypeError("representation(session, target): the first argument is the session, "
                        f"got the peer {session.id!r}")
    warnings.warn("peer.representation(other_peer): the first argument is now the session, as "
                  "in Honcho's SDK; pass target=other_peer", DeprecationWarning, stacklevel=3)
    return None, session


def conclusion_inputs(conclusions: Any, observed: Any) -> list[str | ConclusionCreate]:
    """Conclusions about `observed` given as strings, ConclusionCreate, or as Honcho's
    `{"content": ..., "session_id": ...}` (one or a list)."""
    if isinstance(conclusions, str | Mapping | ConclusionCreate):
        conclusions = [conclusions]
    out: list[str | ConclusionCreate] = []
    for c in conclusions:
        if isinstance(c, Mapping):
            out.append(ConclusionCreate(str(c["content"]), observed_id=_id(observed),
                                        session_id=_opt_id(c.get("session_id"))))
        elif isinstance(c, str):
            out.append(ConclusionCreate(c, observed_id=_id(observed)))
        else:
            out.append(c)
    return out


def read_file_arg(file: Any, filename: str | None, content_type: str | None
                  ) -> tuple[bytes, str, str]:
    """`file` as bytes, a str/PathLike path, a binary file object, or Honcho's
    `(filename, bytes or file object, content_type)`; guesses the content type if missing."""
    import mimetypes
    from pathlib import Path

    if isinstance(file, tuple):
        name, body, ctype = file
        data, _, _ = read_file_arg(body, name, ctype)
        return data, filename or name, content_type or ctype
    if isinstance(file, bytes | bytearray | memoryview):
        data = bytes(file)
    elif isinstance(file, str | os.PathLike):
        path = Path(file)
        data = path.read_bytes()
        filename = filename or path.name
    else:
        data = file.read()
        if isinstance(data, str):
            data = data.encode()
        filename = filename or os.path.basename(getattr(file, "name", "") or "")
    filename = filename or "upload"
    if not content_type:
        content_type = mimetypes.guess_type(filename)[0] or "text/plain"
    return data, filename, content_type


def resource_fields(resource: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, configuration) of a Workspace, Peer or Session proto as dicts."""
    return struct_to_dict(resource.metadata), message_to_dict(resource.configuration)
