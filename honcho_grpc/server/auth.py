"""Authentication and authorization: one interceptor, one declarative policy table.

Auth is off by default. With `AUTH_USE_AUTH=true` and `AUTH_JWT_SECRET` (at least 32 bytes),
every call to a `honcho.v1` service needs metadata `authorization: Bearer <jwt>`, an HS256
JWT with these claims (empty strings count as absent):

- `ad: true` — admin: every call.
- `w` — workspace: every call naming that workspace, except the admin-only ones.
- `w` + `p` — peer: calls that act as that peer, and reads of sessions the peer is an active
  member of (`POLICIES` says which call is which).
- `w` + `s` — session: calls naming that session (and only it).
- `exp` (optional, seconds since the epoch), `iat`, `jti`.

The narrowest claim wins: a `{w, p}` token cannot touch the peer's siblings or call
workspace-wide methods. A token with both `p` and `s` must satisfy both rules. A token with
`p` or `s` but no `w`, or with none of `ad`/`w`, is invalid.

Checks run inside the handler, after the request is deserialized and before the servicer
runs, so no data is read for a refused call: PERMISSION_DENIED always comes before any
NOT_FOUND, and a token for another tenant cannot probe what exists. Expired, forged or
malformed tokens get UNAUTHENTICATED. Client-streaming calls have every incoming message
checked; the servicer starts only once the first one passed. Health and reflection are not
`honcho.v1` services and bypass auth.

The peer rule needs one database read: whether the peer is an active member of the session(s)
a call names (`session_peers.left_at IS NULL`). A session that does not exist has no members,
so a peer token learns nothing from the refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    dialectic_pb2,
    event_pb2,
    key_pb2,
    message_pb2,
    peer_pb2,
    scope_pb2,
    search_pb2,
    session_pb2,
    webhook_pb2,
    workspace_pb2,
)

from honcho_grpc.domain import sessions

# Tokens live in domain/keys.py; re-exported here, where the CLI and the tests import them.
from honcho_grpc.domain.keys import MIN_SECRET_BYTES as MIN_SECRET_BYTES
from honcho_grpc.domain.keys import AuthConfigError as AuthConfigError
from honcho_grpc.domain.keys import Claims as Claims
from honcho_grpc.domain.keys import check_secret as check_secret
from honcho_grpc.domain.keys import mint_token as mint_token
from honcho_grpc.domain.keys import scope_problems as scope_problems
from honcho_grpc.domain.keys import verify_token as verify_token
from honcho_grpc.errors import HonchoError, permission_denied, unauthenticated
from honcho_grpc.server.interceptors import before, wrap_handler
from honcho_grpc.settings import AuthSettings

PACKAGE = "honcho.v1"
PROTO_MODULES = (workspace_pb2, peer_pb2, session_pb2, message_pb2, search_pb2, conclusion_pb2,
                 dialectic_pb2, webhook_pb2, event_pb2, key_pb2, scope_pb2)


# --- tokens: domain/keys.py (shared with the HTTP face and the CLI) --------------------


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The token of the one `authorization: Bearer <jwt>` metadata entry."""
    values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
    if not values:
        raise unauthenticated("missing `authorization: Bearer <token>` metadata",
                              "TOKEN_MISSING")
    if len(values) > 1:
        raise unauthenticated("more than one authorization entry", "TOKEN_INVALID")
    value = values[0]
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    scheme, _, token = text.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("the authorization scheme must be Bearer", "TOKEN_INVALID")
    return token.strip()


# --- the policy table -----------------------------------------------------------------------

SELF = "self"  # a peer token may call it when the call's `peers` name that peer
MEMBER = "member"  # ... or when the peer is an active member of the session(s) it names


@dataclass(frozen=True)
class Policy:
    """Who may call one RPC, and where its request names what.

    Paths: `a.b` a nested field, `a[].b` every element of a repeated field, `a[]` a repeated
    string, `a{}` the keys of a map, `a|b` the first of a and b that is set.

    - `workspace`: the workspace the call is in (every non-admin token must match it).
    - `admin`: admin tokens only.
    - `sessions`: sessions the call touches. A session token needs all of them set and equal
      to its session; a peer token must be an active member of every one that is set.
    - `peers`: peers the call acts as or on behalf of. With a peer token each one that is set
      must be that peer.
    - `session_token`: whether session tokens may call it at all.
    - `peer_token`: how peer tokens may call it: SELF (a `peers` value names the peer),
      MEMBER (the call names a session the peer is a member of); empty: never.
    - `session_forbids`: fields a session token must leave empty (they reach outside the
      session).
    - `only_when`: client streams: check only messages where this oneof member is set (the
      rest carry no names, like file chunks after the header).
    - `workspace_only`: fields only workspace and admin tokens may set (scopes reach across
      sessions a peer or session token was not given).
    """

    workspace: str = "workspace_id"
    admin: bool = False
    sessions: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    session_token: bool = False
    peer_token: frozenset[str] = frozenset()
    session_forbids: tuple[str, ...] = ()
    only_when: str = ""
    workspace_only: tuple[str, ...] = ()


_M = frozenset({MEMBER})
_S = frozenset({SELF})
_SM = frozenset({SELF, MEMBER})
WORKSPACE = Policy()
ADMIN = Policy(workspace="", admin=True)
# A read or write inside one session: session tokens for it, peer tokens of its members.
IN_SESSION = Policy(sessions=("session_id",), session_token=True, peer_token=_M)
# Session-level operations a member peer may not perform (membership, settings, deletion).
SESSION_ADMIN = Policy(sessions=("session_id",), session_token=True)
# Calls acting as one peer (its own record, cards and views).
AS_PEER = Policy(peers=("peer_id",), peer_token=_S)


def _m(service: str, method: str) -> str:
    return f"/{PACKAGE}.{service}/{method}"


POLICIES: dict[str, Policy] = {
    # WorkspaceService: tenant-wide, except the queue status of one session or observer.
    _m("WorkspaceService", "GetOrCreateWorkspace"): WORKSPACE,
    _m("WorkspaceService", "GetWorkspace"): WORKSPACE,
    _m("WorkspaceService", "ListWorkspaces"): ADMIN,
    _m("WorkspaceService", "UpdateWorkspace"): Policy(workspace="workspace.id"),
    _m("WorkspaceService", "DeleteWorkspace"): WORKSPACE,
    _m("WorkspaceService", "GetQueueStatus"): Policy(
        sessions=("session_id",), peers=("observer_id",), session_token=True, peer_token=_S),
    _m("WorkspaceService", "ScheduleDream"): Policy(
        sessions=("session_id",), peers=("observer_id",), peer_token=_S),
    # PeerService: a peer token reaches itself, its cards and its own views of others.
    _m("PeerService", "GetOrCreatePeer"): AS_PEER,
    _m("PeerService", "GetPeer"): AS_PEER,
    _m("PeerService", "ListPeers"): WORKSPACE,
    _m("PeerService", "UpdatePeer"): Policy(workspace="peer.workspace_id", peers=("peer.id",),
                                            peer_token=_S),
    _m("PeerService", "DeletePeer"): AS_PEER,
    _m("PeerService", "ListPeerSessions"): AS_PEER,
    _m("PeerService", "GetPeerCard"): AS_PEER,
    _m("PeerService", "SetPeerCard"): AS_PEER,
    _m("PeerService", "GetRepresentation"): Policy(
        peers=("peer_id",), sessions=("session_id", "session_ids[]"), peer_token=_S,
        workspace_only=("scope_ids[]",)),
    _m("PeerService", "GetPeerContext"): AS_PEER,
    # SessionService
    _m("SessionService", "GetOrCreateSession"): Policy(
        sessions=("session_id",), peers=("peers{}",), session_token=True, peer_token=_M,
        workspace_only=("scope_ids[]",)),
    _m("SessionService", "GetSession"): IN_SESSION,
    _m("SessionService", "ListSessions"): WORKSPACE,
    _m("SessionService", "UpdateSession"): Policy(
        workspace="session.workspace_id", sessions=("session.id",), session_token=True),
    _m("SessionService", "DeleteSession"): SESSION_ADMIN,
    # The copy is a new session: workspace scope.
    _m("SessionService", "CloneSession"): WORKSPACE,
    _m("SessionService", "AddPeers"): SESSION_ADMIN,
    _m("SessionService", "SetPeers"): SESSION_ADMIN,
    # A member may leave (remove itself) but not remove others.
    _m("SessionService", "RemovePeers"): Policy(
        sessions=("session_id",), peers=("peer_ids[]",), session_token=True, peer_token=_M),
    _m("SessionService", "ListSessionPeers"): IN_SESSION,
    _m("SessionService", "GetSessionPeerConfig"): Policy(
        sessions=("session_id",), peers=("peer_id",), session_token=True, peer_token=_M),
    _m("SessionService", "SetSessionPeerConfig"): Policy(
        sessions=("session_id",), peers=("peer_id",), session_token=True, peer_token=_M),
    # A peer reads context from its own perspective (the perspective defaults to the target's
    # own); a session token may not ask for a representation (built from other sessions too).
    _m("SessionService", "GetContext"): Policy(
        sessions=("session_id", "session_ids[]"), peers=("peer_perspective|peer_target",),
        session_token=True, peer_token=_M, session_forbids=("peer_target",),
        workspace_only=("scope_id",)),
    _m("SessionService", "GetSummaries"): IN_SESSION,
    # MessageService: members write only as themselves; edits and deletes are session-level.
    _m("MessageService", "CreateMessages"): Policy(
        sessions=("session_id",), peers=("messages[].peer_id",), session_token=True,
        peer_token=_M),
    _m("MessageService", "ImportMessages"): Policy(
        sessions=("session_id",), peers=("messages[].peer_id",), session_token=True,
        peer_token=_M),
    _m("MessageService", "UploadFile"): Policy(
        workspace="header.workspace_id", sessions=("header.session_id",),
        peers=("header.peer_id",), session_token=True, peer_token=_M, only_when="header"),
    _m("MessageService", "GetMessage"): IN_SESSION,
    _m("MessageService", "ListMessages"): IN_SESSION,
    _m("MessageService", "UpdateMessage"): Policy(
        workspace="message.workspace_id", sessions=("message.session_id",),
        session_token=True),
    _m("MessageService", "DeleteMessage"): SESSION_ADMIN,
    # SearchService: a session (member or session token) or the peer's own messages.
    _m("SearchService", "SearchMessages"): Policy(
        sessions=("session_id",), peers=("peer_id",), session_token=True, peer_token=_SM,
        workspace_only=("scope_id",)),
    # ConclusionService: a peer token manages what it concludes as observer.
    _m("ConclusionService", "CreateConclusions"): Policy(
        sessions=("conclusions[].session_id",), peers=("conclusions[].observer_id",),
        peer_token=_S),
    _m("ConclusionService", "ListConclusions"): WORKSPACE,
    _m("ConclusionService", "QueryConclusions"): Policy(peers=("observer_id",), peer_token=_S),
    _m("ConclusionService", "DeleteConclusion"): WORKSPACE,
    # DialecticService: the asking peer; a session given for context needs its membership.
    # An allowlist needs the membership of every session it names, scopes a workspace token.
    _m("DialecticService", "Chat"): Policy(
        workspace="query.workspace_id", sessions=("query.session_id", "query.session_ids[]"),
        peers=("query.peer_id",), peer_token=_S, workspace_only=("query.scope_ids[]",)),
    _m("DialecticService", "StreamChat"): Policy(
        workspace="query.workspace_id", sessions=("query.session_id", "query.session_ids[]"),
        peers=("query.peer_id",), peer_token=_S, workspace_only=("query.scope_ids[]",)),
    # WebhookService: tenant-wide.
    _m("WebhookService", "CreateWebhookEndpoint"): WORKSPACE,
    _m("WebhookService", "ListWebhookEndpoints"): WORKSPACE,
    _m("WebhookService", "DeleteWebhookEndpoint"): WORKSPACE,
    _m("WebhookService", "TestWebhook"): WORKSPACE,
    # EventService: one session's feed, or the feed about the peer itself.
    _m("EventService", "WatchEvents"): Policy(
        sessions=("session_id",), peers=("peer_id",), session_token=True, peer_token=_SM),
    # KeyService
    _m("KeyService", "CreateKey"): ADMIN,
    # ScopeService: tenant-wide (a scope spans sessions).
    _m("ScopeService", "GetOrCreateScope"): WORKSPACE,
    _m("ScopeService", "GetScope"): WORKSPACE,
    _m("ScopeService", "ListScopes"): WORKSPACE,
    _m("ScopeService", "AddScopeSessions"): WORKSPACE,
    _m("ScopeService", "RemoveScopeSession"): WORKSPACE,
    _m("ScopeService", "ListScopeSessions"): WORKSPACE,
    _m("ScopeService", "GetScopeStatus"): WORKSPACE,
}


def rpc_methods() -> dict[str, Descriptor]:
    """Every `honcho.v1` RPC by full method name, with its request type."""
    out = {}
    for module in PROTO_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out[f"/{service.full_name}/{method.name}"] = method.input_type
    return out


def _path_problem(descriptor: Descriptor, path: str) -> str | None:
    for alternative in path.split("|"):
        current = descriptor
        parts = alternative.split(".")
        for i, part in enumerate(parts):
            name = part.rstrip("[]{}")
            fd = current.fields_by_name.get(name)
            if fd is None:
                return f"{descriptor.full_name} has no field {name!r} ({path})"
            is_map = (fd.message_type is not None
                      and fd.message_type.GetOptions().map_entry)
            repeated = fd.is_repeated
            if part.endswith("{}") != is_map or part.endswith("[]") != (repeated and not is_map):
                return f"{path}: {name!r} is used with the wrong shape"
            last = i == len(parts) - 1
            if last:
                key = fd.message_type.fields_by_name["key"] if is_map and fd.message_type else fd
                if key.type != FieldDescriptor.TYPE_STRING:
                    return f"{path}: {name!r} is not a string"
            elif fd.message_type is None or is_map:
                return f"{path}: {name!r} is not a message"
            else:
                current = fd.message_type
    return None


def policy_problems(policies: dict[str, Policy] | None = None) -> list[str]:
    """Methods without a policy, policies for no method, paths that name nothing."""
    policies = POLICIES if policies is None else policies
    methods = rpc_methods()
    problems = [f"no policy for {m}" for m in methods if m not in policies]
    problems += [f"policy for unknown method {m}" for m in policies if m not in methods]
    for name, policy in policies.items():
        request = methods.get(name)
        if request is None:
            continue
        paths = (*policy.sessions, *policy.peers, *policy.session_forbids,
                 *policy.workspace_only)
        if policy.workspace:
            paths = (policy.workspace, *paths)
        elif not policy.admin:
            problems.append(f"{name}: no workspace field and not admin-only")
        problems += [p for p in (_path_problem(request, path) for path in paths) if p]
        if policy.only_when and policy.only_when not in request.fields_by_name:
            problems.append(f"{name}: only_when names no field")
    return problems


def values(message: Message, path: str) -> list[str]:
    """The strings at `path` (see Policy), empty ones included."""
    if "|" in path:
        found: list[str] = []
        for alternative in path.split("|"):
            found = values(message, alternative)
            if any(found):
                return found
        return found
    current: list[Any] = [message]
    for part in path.split("."):
        name = part.rstrip("[]{}")
        if part.endswith("[]"):
            current = [item for m in current for item in getattr(m, name)]
        elif part.endswith("{}"):
            current = [key for m in current for key in getattr(m, name)]
        else:
            current = [getattr(m, name) for m in current]
    return [str(v) for v in current]


# --- decisions ------------------------------------------------------------------------------


@dataclass
class Decision:
    """Allowed, possibly on condition that `peer` is an active member of `sessions`."""

    workspace: str = ""
    peer: str = ""
    sessions: frozenset[str] = field(default_factory=frozenset)


def _denied(method: str, reason: str, message: str) -> HonchoError:
    return permission_denied(message, reason, method=method.rsplit("/", 1)[-1])


def decide(method: str, policy: Policy | None, claims: Claims, request: Message) -> Decision:
    """Raise PERMISSION_DENIED unless `claims` may make this call (membership aside)."""
    if claims.admin:
        return Decision()
    if policy is None:
        raise _denied(method, "NO_POLICY", "this method is reserved to admin tokens")
    if policy.admin:
        raise _denied(method, "ADMIN_REQUIRED", "this method needs an admin token")
    if values(request, policy.workspace) != [claims.workspace]:
        raise _denied(method, "TOKEN_SCOPE_MISMATCH", "the token is not valid for this call")
    if (claims.peer or claims.session) and any(
            v for path in policy.workspace_only for v in values(request, path)):
        raise _denied(method, "TOKEN_SCOPE_MISMATCH",
                      "scopes need a workspace or admin token")
    sessions = [v for path in policy.sessions for v in values(request, path)]
    if claims.session and (
            not policy.session_token or not sessions
            or any(s != claims.session for s in sessions)
            or any(v for path in policy.session_forbids for v in values(request, path))):
        raise _denied(method, "TOKEN_SCOPE_MISMATCH", "the token is not valid for this call")
    if not claims.peer:
        return Decision()
    peers = [v for path in policy.peers for v in values(request, path) if v]
    named = {s for s in sessions if s}
    allowed = ((SELF in policy.peer_token and bool(peers))
               or (MEMBER in policy.peer_token and bool(named)))
    if not allowed or any(p != claims.peer for p in peers):
        raise _denied(method, "TOKEN_SCOPE_MISMATCH", "the token is not valid for this call")
    return Decision(workspace=claims.workspace, peer=claims.peer, sessions=frozenset(named))


class Authorizer:
    """Verifies tokens and applies POLICIES; `pool` answers the membership question."""

    def __init__(self, settings: AuthSettings, pool: asyncpg.Pool,
                 policies: dict[str, Policy] | None = None) -> None:
        self.key = check_secret(settings.jwt_secret.get_secret_value())
        self.pool = pool
        self.policies = POLICIES if policies is None else policies
        problems = policy_problems(self.policies)
        if problems:
            raise AuthConfigError("auth policy table is incomplete: " + "; ".join(problems))

    def claims(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Claims:
        return verify_token(bearer(metadata), self.key)

    async def check(self, method: str, claims: Claims, request: Message,
                    members_of: set[str] | None = None) -> None:
        """Raise unless allowed. `members_of` caches sessions already checked (streams)."""
        policy = self.policies.get(method)
        if policy is not None and policy.only_when and not request.HasField(policy.only_when):
            return
        decision = decide(method, policy, claims, request)
        wanted = decision.sessions - (members_of or set())
        if not wanted:
            return
        if not await sessions.peer_is_member(self.pool, decision.workspace, decision.peer,
                                             wanted):
            raise _denied(method, "SESSION_MEMBERSHIP_REQUIRED",
                          "the peer is not an active member of the session")
        if members_of is not None:
            members_of.update(wanted)


# --- the interceptor ------------------------------------------------------------------------


async def _checked_stream(first: Any, rest: AsyncIterator[Any],
                          check: Callable[[Any], Awaitable[None]]) -> AsyncIterator[Any]:
    yield first
    async for message in rest:
        await check(message)
        yield message


async def _empty() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every `honcho.v1` handler with the token and policy check.

    Register it after the ErrorInterceptor (so it runs inside it and its refusals become
    rich statuses)."""

    def __init__(self, settings: AuthSettings, pool: asyncpg.Pool,
                 policies: dict[str, Policy] | None = None) -> None:
        self.authorizer = Authorizer(settings, pool, policies)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(f"/{PACKAGE}."):
            return handler  # unknown method (UNIMPLEMENTED), health, reflection
        metadata = handler_call_details.invocation_metadata
        authorizer = self.authorizer

        async def checked_request(request: Any) -> Any:
            await authorizer.check(method, authorizer.claims(metadata), request)
            return request

        def stream_checker() -> Callable[[Any], Awaitable[None]]:
            claims: list[Claims] = []
            members: set[str] = set()

            async def check(request: Any) -> None:
                if not claims:
                    claims.append(authorizer.claims(metadata))
                await authorizer.check(method, claims[0], request, members)

            return check

        async def checked_requests(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            """Check the first message before the servicer starts, the rest as they come."""
            check = stream_checker()
            iterator = requests.__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                authorizer.claims(metadata)  # an empty stream still needs a valid token
                return _empty()
            await check(first)
            return _checked_stream(first, iterator, check)

        return wrap_handler(handler, before(checked_request, checked_requests))


__all__ = ["POLICIES", "AuthConfigError", "AuthInterceptor", "Authorizer", "Claims", "Policy",
           "bearer", "check_secret", "decide", "mint_token", "policy_problems", "rpc_methods",
           "scope_problems", "values", "verify_token"]
