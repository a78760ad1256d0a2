"""Auth beyond the matrix: token checks, existence probing, narrowest claims, streams, keys."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from honcho_grpc_proto.v1 import (
    key_pb2,
    key_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    resources_pb2,
    session_pb2,
    session_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import start
from honcho_grpc.server.auth import POLICIES, AuthConfigError, policy_problems, values
from tests.conftest import ROOT, Stubs, make_settings
from tests.helpers import fails
from tests.security.conftest import (
    OTHER_SECRET,
    SECRET,
    bearer,
    fingerprint,
    invoke,
    raw_token,
    token,
)

DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def test_policy_table_covers_every_rpc_with_valid_paths() -> None:
    assert policy_problems() == []
    # 58 RPCs in the contract (README); a new RPC must update this count deliberately.
    assert len(POLICIES) == 58


def test_paths_reach_nested_repeated_and_map_fields() -> None:
    req = message_pb2.CreateMessagesRequest(messages=[
        message_pb2.MessageInput(peer_id="a"), message_pb2.MessageInput(peer_id="b")])
    assert values(req, "messages[].peer_id") == ["a", "b"]
    req2 = session_pb2.AddPeersRequest(peers={"x": resources_pb2.SessionPeerConfiguration()})
    assert values(req2, "peers{}") == ["x"]
    ctx = session_pb2.GetContextRequest(peer_target="t")
    assert values(ctx, "peer_perspective|peer_target") == ["t"]
    ctx.peer_perspective = "p"
    assert values(ctx, "peer_perspective|peer_target") == ["p"]
    upd = peer_pb2.UpdatePeerRequest(peer=resources_pb2.Peer(workspace_id="w", id="p"))
    assert values(upd, "peer.workspace_id") == ["w"]


@pytest.fixture
async def world(stubs: Stubs) -> dict[str, str]:
    """W1: peers p1 (in s1), p2 (in s2), one message in s1; W2: the same ids."""
    w1, w2 = f"au-{uuid.uuid4().hex[:10]}", f"au-{uuid.uuid4().hex[:10]}"
    for ws in (w1, w2):
        for sid, peer in (("s1", "p1"), ("s2", "p2")):
            await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=sid, messages=[
                    message_pb2.MessageInput(peer_id=peer, content=f"hi from {peer}")]))
    return {"w1": w1, "w2": w2}


def stubs_for(channel: grpc.aio.Channel) -> tuple[
        workspace_pb2_grpc.WorkspaceServiceStub, peer_pb2_grpc.PeerServiceStub,
        session_pb2_grpc.SessionServiceStub, message_pb2_grpc.MessageServiceStub]:
    return (workspace_pb2_grpc.WorkspaceServiceStub(channel),
            peer_pb2_grpc.PeerServiceStub(channel), session_pb2_grpc.SessionServiceStub(channel),
            message_pb2_grpc.MessageServiceStub(channel))


async def test_health_and_reflection_need_no_token(auth_channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(auth_channel)
    status = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(auth_channel)

    async def requests():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in refl.ServerReflectionInfo(requests(), timeout=5):
        assert "honcho.v1.KeyService" in {s.name for s in response.list_services_response.service}
        break


async def test_unknown_method_is_unimplemented(auth_channel: grpc.aio.Channel) -> None:
    call = auth_channel.unary_unary("/honcho.v1.WorkspaceService/Nope",
                                    request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


BAD_TOKENS = {
    "garbage": ("not-a-jwt", "TOKEN_INVALID"),
    "expired": (token(admin=True, expires_in=-60), "TOKEN_EXPIRED"),
    "forged": (token(OTHER_SECRET, admin=True), "TOKEN_INVALID"),
    "alg_none": (jwt.encode({"ad": True}, None, algorithm="none"), "TOKEN_INVALID"),
    "hs512": (raw_token({"ad": True}, algorithm="HS512"), "TOKEN_INVALID"),
    "tampered": (token(workspace="w")[:-3] + "AAA", "TOKEN_INVALID"),
    "peer_without_workspace": (raw_token({"p": "p1"}), "TOKEN_INVALID"),
    "session_without_workspace": (raw_token({"s": "s1"}), "TOKEN_INVALID"),
    "no_scope": (raw_token({}), "TOKEN_INVALID"),
    "admin_as_string": (raw_token({"ad": "true"}), "TOKEN_INVALID"),
    "workspace_not_string": (raw_token({"w": 5}), "TOKEN_INVALID"),
    "workspace_bad_id": (raw_token({"w": "a b"}), "TOKEN_INVALID"),
    "admin_with_scope": (raw_token({"ad": True, "w": "w"}), "TOKEN_INVALID"),
    "future_iat": (raw_token({"ad": True, "iat": int(time.time()) + 3600}), "TOKEN_INVALID"),
    "exp_not_number": (raw_token({"ad": True, "exp": "soon"}), "TOKEN_INVALID"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_are_unauthenticated(case: str, auth_channel: grpc.aio.Channel) -> None:
    value, reason = BAD_TOKENS[case]
    ws_stub = workspace_pb2_grpc.WorkspaceServiceStub(auth_channel)
    await fails(ws_stub.ListWorkspaces(workspace_pb2.ListWorkspacesRequest(),
                                       metadata=bearer(value), timeout=5), UNAUTH, reason=reason)


async def test_infinite_exp_is_unauthenticated(auth_channel: grpc.aio.Channel) -> None:
    # JSON has no Infinity, but Python's parser reads it; PyJWT then trips on int(inf).
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = jwt.utils.base64url_encode(b'{"ad":true,"exp":Infinity}')
    signing_input = header + b"." + body
    import hashlib
    import hmac

    signature = jwt.utils.base64url_encode(
        hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest())
    value = (signing_input + b"." + signature).decode()
    ws_stub = workspace_pb2_grpc.WorkspaceServiceStub(auth_channel)
    await fails(ws_stub.ListWorkspaces(workspace_pb2.ListWorkspacesRequest(),
                                       metadata=bearer(value), timeout=5), UNAUTH)


@pytest.mark.parametrize("metadata", [
    (("authorization", "Basic abc"),),
    (("authorization", "Bearer"),),
    (("authorization", f"Bearer {token(admin=True)}"),
     ("authorization", f"Bearer {token(admin=True)}")),
    (("x-api-key", token(admin=True)),),
])
async def test_malformed_authorization_metadata(metadata: tuple[tuple[str, str], ...],
                                                auth_channel: grpc.aio.Channel) -> None:
    ws_stub = workspace_pb2_grpc.WorkspaceServiceStub(auth_channel)
    await fails(ws_stub.ListWorkspaces(workspace_pb2.ListWorkspacesRequest(),
                                       metadata=metadata, timeout=5), UNAUTH)


async def test_lowercase_bearer_scheme_is_accepted(auth_channel: grpc.aio.Channel) -> None:
    ws_stub = workspace_pb2_grpc.WorkspaceServiceStub(auth_channel)
    await ws_stub.ListWorkspaces(workspace_pb2.ListWorkspacesRequest(page_size=1), timeout=5,
                                 metadata=(("authorization", f"bearer {token(admin=True)}"),))


async def test_existence_cannot_be_probed(auth_channel: grpc.aio.Channel,
                                          world: dict[str, str]) -> None:
    """A refused call looks the same whether what it names exists or not."""
    w1, w2 = world["w1"], world["w2"]
    _, peers, sessions, messages = stubs_for(auth_channel)
    other_tenant = bearer(token(workspace=w2))
    reasons = set()
    for peer_id in ("p1", "no-such-peer"):
        failure = await fails(peers.GetPeer(peer_pb2.GetPeerRequest(
            workspace_id=w1, peer_id=peer_id), metadata=other_tenant), DENIED)
        reasons.add((failure.info.reason, failure.error.details()))
    failure = await fails(peers.GetPeer(peer_pb2.GetPeerRequest(
        workspace_id="no-such-workspace", peer_id="p1"), metadata=other_tenant), DENIED)
    reasons.add((failure.info.reason, failure.error.details()))
    assert len(reasons) == 1
    # A peer token: a session it is not in and one that does not exist look alike.
    p1 = bearer(token(workspace=w1, peer="p1"))
    reasons = set()
    for sid in ("s2", "no-such-session"):
        failure = await fails(sessions.GetSession(session_pb2.GetSessionRequest(
            workspace_id=w1, session_id=sid), metadata=p1), DENIED)
        reasons.add((failure.info.reason, failure.error.details()))
        await fails(messages.ListMessages(message_pb2.ListMessagesRequest(
            workspace_id=w1, session_id=sid), metadata=p1), DENIED)
    assert len(reasons) == 1
    # A workspace token sees NOT_FOUND only inside its own workspace.
    own = bearer(token(workspace=w1))
    await fails(peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=w1, peer_id="nobody"),
                              metadata=own), grpc.StatusCode.NOT_FOUND)


async def test_narrowest_claim_wins(auth_channel: grpc.aio.Channel,
                                    world: dict[str, str]) -> None:
    w1 = world["w1"]
    workspaces, peers, sessions, _ = stubs_for(auth_channel)
    p1 = bearer(token(workspace=w1, peer="p1"))
    await peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=w1, peer_id="p1"), metadata=p1)
    await fails(peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=w1, peer_id="p2"),
                              metadata=p1), DENIED)
    await fails(peers.ListPeers(peer_pb2.ListPeersRequest(workspace_id=w1), metadata=p1),
                DENIED)
    await fails(workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(workspace_id=w1),
                                        metadata=p1), DENIED)
    # Another peer's view of p1 is not p1's to read.
    await fails(peers.GetRepresentation(peer_pb2.GetRepresentationRequest(
        workspace_id=w1, peer_id="p2", target_id="p1"), metadata=p1), DENIED)
    s1 = bearer(token(workspace=w1, session="s1"))
    await sessions.GetSession(session_pb2.GetSessionRequest(workspace_id=w1, session_id="s1"),
                              metadata=s1)
    await fails(sessions.ListSessions(session_pb2.ListSessionsRequest(workspace_id=w1),
                                      metadata=s1), DENIED)
    await fails(sessions.GetSession(session_pb2.GetSessionRequest(
        workspace_id=w1, session_id="s2"), metadata=s1), DENIED)


async def test_peer_token_writes_only_as_itself(auth_channel: grpc.aio.Channel,
                                                world: dict[str, str], db: Database) -> None:
    w1 = world["w1"]
    _, _, _, messages = stubs_for(auth_channel)
    p1 = bearer(token(workspace=w1, peer="p1"))
    before = await fingerprint(db, [w1])
    for authors in (["p2"], ["p1", "p2"], ["p1", "p1", "p2"]):
        await fails(messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=w1, session_id="s1", messages=[
                message_pb2.MessageInput(peer_id=a, content="x") for a in authors]),
            metadata=p1), DENIED)
    # Not a member of s2: may not write there even as itself (that would make it join).
    await fails(messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=w1, session_id="s2", messages=[
            message_pb2.MessageInput(peer_id="p1", content="x")]), metadata=p1), DENIED)
    assert await fingerprint(db, [w1]) == before
    done = await messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=w1, session_id="s1", messages=[
            message_pb2.MessageInput(peer_id="p1", content="mine")]), metadata=p1)
    assert done.messages[0].peer_id == "p1"


async def test_peer_token_loses_access_when_it_leaves(auth_channel: grpc.aio.Channel,
                                                      world: dict[str, str]) -> None:
    w1 = world["w1"]
    _, _, sessions, messages = stubs_for(auth_channel)
    p1 = bearer(token(workspace=w1, peer="p1"))
    listing = message_pb2.ListMessagesRequest(workspace_id=w1, session_id="s1")
    assert (await messages.ListMessages(listing, metadata=p1)).messages
    # A member may remove itself, not others.
    await fails(sessions.RemovePeers(session_pb2.RemovePeersRequest(
        workspace_id=w1, session_id="s1", peer_ids=["p1", "p2"]), metadata=p1), DENIED)
    await sessions.RemovePeers(session_pb2.RemovePeersRequest(
        workspace_id=w1, session_id="s1", peer_ids=["p1"]), metadata=p1)
    await fails(messages.ListMessages(listing, metadata=p1), DENIED)
    # ... and cannot rejoin on its own.
    await fails(sessions.AddPeers(session_pb2.AddPeersRequest(
        workspace_id=w1, session_id="s1",
        peers={"p1": resources_pb2.SessionPeerConfiguration()}), metadata=p1), DENIED)
    await fails(sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=w1, session_id="s1",
        peers={"p1": resources_pb2.SessionPeerConfiguration()}), metadata=p1), DENIED)
    await sessions.AddPeers(session_pb2.AddPeersRequest(
        workspace_id=w1, session_id="s1", peers={"p1": resources_pb2.SessionPeerConfiguration()}),
        metadata=bearer(token(workspace=w1, session="s1")))
    assert (await messages.ListMessages(listing, metadata=p1)).messages


async def test_context_perspective_rules(auth_channel: grpc.aio.Channel,
                                         world: dict[str, str]) -> None:
    w1 = world["w1"]
    _, _, sessions, _ = stubs_for(auth_channel)
    p1 = bearer(token(workspace=w1, peer="p1"))
    s1 = bearer(token(workspace=w1, session="s1"))

    def ctx(**kw: str) -> session_pb2.GetContextRequest:
        return session_pb2.GetContextRequest(workspace_id=w1, session_id="s1", **kw)

    await sessions.GetContext(ctx(), metadata=p1)
    await sessions.GetContext(ctx(peer_target="p1"), metadata=p1)
    await sessions.GetContext(ctx(peer_target="p2", peer_perspective="p1"), metadata=p1)
    # The perspective defaults to the target's own view: p2's view is not p1's to read.
    await fails(sessions.GetContext(ctx(peer_target="p2"), metadata=p1), DENIED)
    await fails(sessions.GetContext(ctx(peer_target="p1", peer_perspective="p2"),
                                    metadata=p1), DENIED)
    # A session token gets the session's context, not representations built elsewhere.
    await sessions.GetContext(ctx(), metadata=s1)
    await fails(sessions.GetContext(ctx(peer_target="p1"), metadata=s1), DENIED)


async def test_peer_and_session_claims_together_must_both_hold(
        auth_channel: grpc.aio.Channel, world: dict[str, str]) -> None:
    w1 = world["w1"]
    _, peers, sessions, messages = stubs_for(auth_channel)
    both = bearer(raw_token({"w": w1, "p": "p1", "s": "s1"}))
    await messages.ListMessages(message_pb2.ListMessagesRequest(workspace_id=w1, session_id="s1"),
                                metadata=both)
    # Peer-only calls name no session: the session claim refuses them.
    await fails(peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=w1, peer_id="p1"),
                              metadata=both), DENIED)
    # Session-level calls a member may not make: the peer claim refuses them.
    await fails(sessions.DeleteSession(session_pb2.DeleteSessionRequest(
        workspace_id=w1, session_id="s1"), metadata=both), DENIED)


async def test_import_stream_checks_every_chunk(auth_channel: grpc.aio.Channel,
                                                world: dict[str, str], db: Database) -> None:
    w1, w2 = world["w1"], world["w2"]
    own = bearer(token(workspace=w1))
    before = await fingerprint(db, [w1, w2])

    def chunk(ws: str, sid: str = "s1") -> message_pb2.ImportMessagesRequest:
        return message_pb2.ImportMessagesRequest(workspace_id=ws, session_id=sid, messages=[
            message_pb2.MessageInput(peer_id="p1", content="imported")])

    method = "/honcho.v1.MessageService/ImportMessages"
    code, _ = await invoke(auth_channel, method, [chunk(w1), chunk(w1), chunk(w2)], own)
    assert code == DENIED
    assert await fingerprint(db, [w1, w2]) == before  # the import is one transaction
    p1 = bearer(token(workspace=w1, peer="p1"))
    code, _ = await invoke(auth_channel, method, [chunk(w1), chunk(w1, "s2")], p1)
    assert code == DENIED
    assert await fingerprint(db, [w1, w2]) == before
    code, response = await invoke(auth_channel, method, [chunk(w1), chunk(w1)], p1)
    assert code == grpc.StatusCode.OK and response.imported_count == 2
    # An empty stream still needs a valid token.
    code, _ = await invoke(auth_channel, method, [], ())
    assert code == UNAUTH


async def test_upload_header_is_checked(auth_channel: grpc.aio.Channel,
                                        world: dict[str, str]) -> None:
    w1, w2 = world["w1"], world["w2"]
    method = "/honcho.v1.MessageService/UploadFile"

    def header(ws: str, peer: str = "p1") -> message_pb2.UploadFileRequest:
        return message_pb2.UploadFileRequest(header=message_pb2.UploadFileHeader(
            workspace_id=ws, session_id="s1", peer_id=peer, content_type="text/plain"))

    data = message_pb2.UploadFileRequest(chunk=b"file text")
    own = bearer(token(workspace=w1))
    assert (await invoke(auth_channel, method, [header(w2), data], own))[0] == DENIED
    p1 = bearer(token(workspace=w1, peer="p1"))
    assert (await invoke(auth_channel, method, [header(w1, "p2"), data], p1))[0] == DENIED
    assert (await invoke(auth_channel, method, [data, header(w2)], ()))[0] == UNAUTH
    # A second header naming another workspace is refused too.
    code, _ = await invoke(auth_channel, method, [header(w1), data, header(w2)], own)
    assert code in (DENIED, grpc.StatusCode.INVALID_ARGUMENT)
    code, response = await invoke(auth_channel, method, [header(w1), data], p1)
    assert code == grpc.StatusCode.OK and response.messages[0].peer_id == "p1"


async def test_create_key_issues_working_scoped_keys(auth_channel: grpc.aio.Channel,
                                                     world: dict[str, str]) -> None:
    w1 = world["w1"]
    keys = key_pb2_grpc.KeyServiceStub(auth_channel)
    admin = bearer(token(admin=True))
    soon = timestamp_pb2.Timestamp()
    soon.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    made = await keys.CreateKey(key_pb2.CreateKeyRequest(
        workspace_id=w1, peer_id="p1", expire_time=soon), metadata=admin)
    claims = jwt.decode(made.key, SECRET, algorithms=["HS256"])
    assert claims["w"] == w1 and claims["p"] == "p1" and claims["exp"] == soon.seconds
    _, peers, _, _ = stubs_for(auth_channel)
    await peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=w1, peer_id="p1"),
                        metadata=bearer(made.key))
    await fails(peers.GetPeer(peer_pb2.GetPeerRequest(workspace_id=w1, peer_id="p2"),
                              metadata=bearer(made.key)), DENIED)
    # A workspace key may not mint keys.
    await fails(keys.CreateKey(key_pb2.CreateKeyRequest(workspace_id=w1),
                               metadata=bearer(token(workspace=w1))), DENIED)


@pytest.mark.parametrize(("request_kwargs", "field"), [
    ({}, "workspace_id"),
    ({"peer_id": "p1"}, "workspace_id"),
    ({"session_id": "s1"}, "workspace_id"),
    ({"admin": True, "workspace_id": "w"}, "admin"),
    ({"workspace_id": "w", "peer_id": "p", "session_id": "s"}, "session_id"),
    ({"workspace_id": "bad id"}, "workspace_id"),
    ({"workspace_id": "w", "peer_id": "p\n"}, "peer_id"),
])
async def test_create_key_validates_scope(request_kwargs: dict[str, object], field: str,
                                          auth_channel: grpc.aio.Channel) -> None:
    keys = key_pb2_grpc.KeyServiceStub(auth_channel)
    await fails(keys.CreateKey(key_pb2.CreateKeyRequest(**request_kwargs),  # type: ignore[arg-type]
                               metadata=bearer(token(admin=True))),
                grpc.StatusCode.INVALID_ARGUMENT, field=field)


async def test_create_key_refuses_past_expiry(auth_channel: grpc.aio.Channel) -> None:
    keys = key_pb2_grpc.KeyServiceStub(auth_channel)
    past = timestamp_pb2.Timestamp(seconds=int(time.time()) - 10)
    await fails(keys.CreateKey(key_pb2.CreateKeyRequest(admin=True, expire_time=past),
                               metadata=bearer(token(admin=True))),
                grpc.StatusCode.INVALID_ARGUMENT, field="expire_time")


async def test_create_key_without_auth_is_failed_precondition(stubs: Stubs) -> None:
    keys = key_pb2_grpc.KeyServiceStub(stubs.channel)
    await fails(keys.CreateKey(key_pb2.CreateKeyRequest(admin=True)),
                grpc.StatusCode.FAILED_PRECONDITION, reason="AUTH_DISABLED")


@pytest.mark.parametrize("secret", ["", "short"])
async def test_server_refuses_to_start_without_a_usable_secret(
        secret: str, pg_dsn: str, db: Database) -> None:
    settings = make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": secret})
    with pytest.raises(AuthConfigError, match="AUTH_JWT_SECRET"):
        await start(settings, db, embedder=FakeEmbedder(384), background=False)


def _cli(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    if secret is not None:
        env["AUTH_JWT_SECRET"] = secret
    return subprocess.run([sys.executable, "-m", "honcho_grpc.cli", "keys", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT / "tests")


def test_cli_keys_create() -> None:
    done = _cli("create", "--workspace", "w1", "--peer", "p1", "--expires-in", "2h")
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["w"] == "w1" and claims["p"] == "p1"
    assert 7100 < claims["exp"] - time.time() <= 7200
    assert "AUTH_USE_AUTH is false" in done.stderr
    admin = _cli("create", "--admin")
    assert jwt.decode(admin.stdout.strip(), SECRET, algorithms=["HS256"])["ad"] is True


@pytest.mark.parametrize(("args", "secret", "message"), [
    (("create", "--peer", "p1"), SECRET, "--workspace"),
    (("create", "--admin", "--workspace", "w"), SECRET, "--admin"),
    (("create", "--workspace", "w"), "", "AUTH_JWT_SECRET"),
    (("create", "--workspace", "w", "--expires-in", "soon"), SECRET, "duration"),
])
def test_cli_keys_create_errors(args: tuple[str, ...], secret: str, message: str) -> None:
    done = _cli(*args, secret=secret)
    assert done.returncode != 0
    assert message in done.stderr


def test_cli_keys_secret() -> None:
    done = _cli("secret", secret=None)
    assert done.returncode == 0 and len(done.stdout.strip()) >= 48


async def test_a_watch_ends_when_its_key_expires_or_its_peer_leaves(
        auth_channel: grpc.aio.Channel, ws: str) -> None:
    """The interceptor authorises a call when it opens; a watch lasts, so it is authorised
    again while it runs (events.RECHECK_SECONDS): an expired key gets UNAUTHENTICATED, a peer
    removed from the session it watches PERMISSION_DENIED, instead of the feed going on."""
    from honcho_grpc_proto.v1 import event_pb2, event_pb2_grpc

    from honcho_grpc.domain.keys import LEEWAY_SECONDS
    from honcho_grpc.server.servicers.event import RECHECK_SECONDS

    admin = bearer(token(admin=True))
    sessions = session_pb2_grpc.SessionServiceStub(auth_channel)
    messages = message_pb2_grpc.MessageServiceStub(auth_channel)
    for session in ("s1", "s2"):
        await sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
            workspace_id=ws, session_id=session, peers={
                "alice": resources_pb2.SessionPeerConfiguration(),
                "bob": resources_pb2.SessionPeerConfiguration()}), metadata=admin)
    events = event_pb2_grpc.EventServiceStub(auth_channel)

    async def outcome(call: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in call:
                pass
        return ended.value.code()

    # A key that expires while it watches.
    short = events.WatchEvents(event_pb2.WatchEventsRequest(workspace_id=ws, session_id="s1"),
                               metadata=bearer(token(workspace=ws, peer="alice",
                                                     expires_in=2)), timeout=40)
    await short.initial_metadata()
    started = time.monotonic()
    assert await outcome(short) == UNAUTH  # not the deadline's DEADLINE_EXCEEDED
    # Expiry is judged with the clock-skew leeway every token check allows.
    assert time.monotonic() - started < 2 + LEEWAY_SECONDS + 2 * RECHECK_SECONDS + 5
    # A member removed from the session while it watches, with events still flowing there.
    watch = events.WatchEvents(event_pb2.WatchEventsRequest(workspace_id=ws, session_id="s2"),
                               metadata=bearer(token(workspace=ws, peer="alice")), timeout=20)
    await watch.initial_metadata()
    await sessions.RemovePeers(session_pb2.RemovePeersRequest(
        workspace_id=ws, session_id="s2", peer_ids=["alice"]), metadata=admin)
    for i in range(3):
        await messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s2", messages=[message_pb2.MessageInput(
                peer_id="bob", content=f"after alice left {i}")]), metadata=admin)
        await asyncio.sleep(1)
    assert await outcome(watch) == DENIED
