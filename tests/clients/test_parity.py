"""The contract as other languages see it: the file options every .proto carries, and the
client wrappers' coverage of every RPC.

The descriptors come from the protobuf runtime's default pool (filled when the client's
generated modules are imported), looked up by proto file name, so the test does not depend
on where the Python stubs live. Coverage is measured on the wire: each wrapper runs a
scenario using every one of its methods against the live server through a channel that
records the method of each call, and every RPC of the descriptors must have been called.
The TypeScript client's scenario is clients/typescript/test/parity.test.ts, checked the same
way by tests/clients/test_typescript_client.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from honcho_grpc_client import AsyncHoncho, FailedPreconditionError, Honcho, SessionPeerConfig

from honcho_grpc.server.app import Running

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
PROTO_FILES = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))

# One value per package (buf's PACKAGE_SAME_* lint rules); changing one breaks every user of
# that language's generated code, which is what this pin is for (buf.yaml excepts these
# options from `buf breaking`, see there).
LANGUAGE_OPTIONS = {
    "go_package": "honcho-grpc/gen/go/honcho/v1;honchov1",
    "java_package": "dev.honcho.v1",
    "java_multiple_files": True,
    "csharp_namespace": "Honcho.V1",
    "php_namespace": "Honcho\\V1",
    "ruby_package": "Honcho::V1",
    "objc_class_prefix": "HXX",
}


def file_proto(name: str) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    descriptor_pool.Default().FindFileByName(name).CopyToProto(out)
    return out


def test_there_are_protos() -> None:
    assert len(PROTO_FILES) >= 11, PROTO_FILES


@pytest.mark.parametrize("name", PROTO_FILES)
def test_every_proto_carries_the_language_options(name: str) -> None:
    options = file_proto(name).options
    for option, want in LANGUAGE_OPTIONS.items():
        assert options.HasField(option), f"{name} lacks option {option}"
        assert getattr(options, option) == want, f"{name}: {option}"
    # Java: one outer class per file, named after it (AIP-191), so classes never collide.
    stem = Path(name).stem
    assert options.java_outer_classname == stem.title().replace("_", "") + "Proto", name


# --------------------------------------------------------------------------- wrapper coverage


def proto_rpcs() -> set[str]:
    """Every RPC of proto/, as gRPC method paths (`/honcho.v1.PeerService/GetPeer`)."""
    out = set()
    for name in PROTO_FILES:
        for service in file_proto(name).service:
            out.update(f"/honcho.v1.{service.name}/{m.name}" for m in service.method)
    return out


def test_the_proto_has_58_rpcs() -> None:
    # The count the wrappers are measured against; a new RPC changes it, and the coverage
    # tests below then fail until each wrapper calls it.
    assert len(proto_rpcs()) == 58


def missing(called: set[str]) -> list[str]:
    return sorted(proto_rpcs() - called)


class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
               grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Records the method of every call made through the channel."""

    def __init__(self) -> None:
        self.methods: set[str] = set()

    def _seen(self, details: Any) -> None:
        method = details.method
        self.methods.add(method.decode() if isinstance(method, bytes) else method)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._seen(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._seen(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._seen(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._seen(details)
        return continuation(details, requests)


class AsyncRecorder:
    """Records the method of every call made through an aio channel. grpc.aio files each
    interceptor under one kind only, so there is one interceptor per kind."""

    def __init__(self) -> None:
        self.methods: set[str] = set()
        seen = self._seen

        class UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
            async def intercept_unary_unary(self, continuation: Any, details: Any,
                                            request: Any) -> Any:
                seen(details)
                return await continuation(details, request)

        class UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
            async def intercept_unary_stream(self, continuation: Any, details: Any,
                                             request: Any) -> Any:
                seen(details)
                return await continuation(details, request)

        class StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
            async def intercept_stream_unary(self, continuation: Any, details: Any,
                                             requests: Any) -> Any:
                seen(details)
                return await continuation(details, requests)

        self.interceptors = [UnaryUnary(), UnaryStream(), StreamUnary()]

    def _seen(self, details: Any) -> None:
        method = details.method
        self.methods.add(method.decode() if isinstance(method, bytes) else method)


WEBHOOK_URL = "https://93.184.215.14/hook"  # a public address literal: accepted, never resolved


def every_sync_wrapper(honcho: Honcho) -> None:
    """Each wrapper method of the sync client once, in an order the server accepts."""
    assert honcho.get_metadata() == {}                                   # GetOrCreateWorkspace
    honcho.set_metadata({"app": "parity"})                               # UpdateWorkspace
    assert honcho.refresh().metadata == {"app": "parity"}                # GetWorkspace
    assert honcho.workspace_id in list(honcho.workspaces())              # ListWorkspaces
    alice = honcho.peer("alice", metadata={"role": "user"})              # GetOrCreatePeer
    bob, carol = honcho.peer("bob"), honcho.peer("carol", create=True)
    alice.set_metadata({"role": "admin"})                                # UpdatePeer
    assert alice.refresh().metadata == {"role": "admin"}                 # GetPeer
    session = honcho.session("s1", create=True)                          # GetOrCreateSession
    session.set_metadata({"topic": "parity"})                            # UpdateSession
    assert session.refresh().metadata == {"topic": "parity"}             # GetSession
    session.add_peers([alice, bob])                                      # AddPeers
    session.set_peers([alice, bob, carol])                               # SetPeers
    session.remove_peers([carol])                                        # RemovePeers
    assert {p.id for p in session.peers()} == {"alice", "bob"}           # ListSessionPeers
    session.set_peer_configuration(bob, SessionPeerConfig(observe_others=True))
    assert session.get_peer_configuration(bob).observe_others is True   # Get/SetSessionPeerConfig
    written = session.add_messages([alice.message("I adopted a puppy named Biscuit"),
                                    bob.message("Biscuit is a lovely name")])  # CreateMessages
    assert session.import_messages([alice.message("imported")]) == 1     # ImportMessages
    uploaded = session.upload_file(("notes.txt", b"alice likes tea", "text/plain"), alice)
    assert uploaded[0].content == "alice likes tea"                      # UploadFile
    assert session.get_message(written[0].id).content == written[0].content  # GetMessage
    assert session.update_message(written[0], {"edited": True}).metadata == {"edited": True}
    session.delete_message(uploaded[0].id)                               # DeleteMessage
    assert len(list(session.messages())) == 3                            # ListMessages
    assert sorted(p.id for p in honcho.peers()) == ["alice", "bob", "carol"]  # ListPeers
    assert [s.id for s in alice.sessions()] == ["s1"]                    # ListPeerSessions
    assert [s.id for s in honcho.sessions()] == ["s1"]                   # ListSessions
    assert honcho.search("puppy", limit=5)                               # SearchMessages
    assert session.context(tokens=500).messages                          # GetContext
    assert session.summaries().short is None                             # GetSummaries
    clone = session.clone()                                              # CloneSession
    clone.delete()                                                       # DeleteSession
    carol.delete()                                                       # DeletePeer
    alice.set_card(["IDENTITY: alice"])                                  # SetPeerCard
    assert alice.get_card() == ["IDENTITY: alice"]                       # GetPeerCard
    about_bob = alice.conclusions_of(bob)
    [fact] = about_bob.create([{"content": "bob likes dogs", "session_id": "s1"}])
    assert [c.id for c in about_bob.list()] == [fact.id]                 # ListConclusions
    assert [c.id for c in about_bob.query("dogs")] == [fact.id]          # QueryConclusions
    assert "dogs" in alice.representation(session, bob)                  # GetRepresentation
    assert "dogs" in alice.context(bob).representation                   # GetPeerContext
    about_bob.delete(fact.id)                                            # DeleteConclusion
    assert "Biscuit" in alice.chat("What is the puppy called?")          # Chat
    assert "Biscuit" in alice.chat_stream("What is the puppy called?").read()  # StreamChat
    assert honcho.schedule_dream(alice, session, bob) in (True, False)   # ScheduleDream
    assert honcho.queue_status(alice).totals.failed == 0                 # GetQueueStatus
    endpoint = honcho.create_webhook(WEBHOOK_URL)                        # CreateWebhookEndpoint
    assert [w.id for w in honcho.webhooks()] == [endpoint.id]            # ListWebhookEndpoints
    honcho.test_webhook()                                                # TestWebhook
    honcho.delete_webhook(endpoint)                                      # DeleteWebhookEndpoint
    team = honcho.scope("team", metadata={"k": "v"})                     # GetOrCreateScope
    assert honcho.get_scope("team").metadata == {"k": "v"}               # GetScope
    assert [s.id for s in honcho.scopes()] == ["team"]                   # ListScopes
    assert team.add_sessions([session]) == 1                             # AddScopeSessions
    assert [s.id for s in team.sessions()] == ["s1"]                     # ListScopeSessions
    assert list(team.status()) == ["s1"]                                 # GetScopeStatus
    assert "Biscuit" in alice.chat("What is the puppy called?", scope=team)
    assert team.remove_session(session)                                  # RemoveScopeSession
    with honcho.events(session=session) as feed:                         # WatchEvents
        feed.ready()
    with pytest.raises(FailedPreconditionError) as refused:              # CreateKey
        honcho.create_key(peer=alice)  # keys exist only with auth on; the call is made
    assert refused.value.reason == "AUTH_DISABLED"
    honcho.delete_workspace()                                            # DeleteWorkspace


async def every_async_wrapper(honcho: AsyncHoncho) -> None:
    """The same with the asyncio client."""
    assert await honcho.get_metadata() == {}
    await honcho.set_metadata({"app": "parity"})
    assert (await honcho.refresh()).metadata == {"app": "parity"}
    assert honcho.workspace_id in [w async for w in honcho.workspaces()]
    alice = await honcho.peer("alice", metadata={"role": "user"})
    bob, carol = await honcho.peer("bob"), await honcho.peer("carol", create=True)
    await alice.set_metadata({"role": "admin"})
    assert (await alice.refresh()).metadata == {"role": "admin"}
    session = await honcho.session("s1", create=True)
    await session.set_metadata({"topic": "parity"})
    assert (await session.refresh()).metadata == {"topic": "parity"}
    await session.add_peers([alice, bob])
    await session.set_peers([alice, bob, carol])
    await session.remove_peers([carol])
    assert {p.id for p in await session.peers()} == {"alice", "bob"}
    await session.set_peer_configuration(bob, SessionPeerConfig(observe_others=True))
    assert (await session.get_peer_configuration(bob)).observe_others is True
    written = await session.add_messages([alice.message("I adopted a puppy named Biscuit"),
                                          bob.message("Biscuit is a lovely name")])
    assert await session.import_messages([alice.message("imported")]) == 1
    uploaded = await session.upload_file(("notes.txt", b"alice likes tea", "text/plain"), alice)
    assert uploaded[0].content == "alice likes tea"
    assert (await session.get_message(written[0].id)).content == written[0].content
    assert (await session.update_message(written[0], {"edited": True})).metadata == {
        "edited": True}
    await session.delete_message(uploaded[0].id)
    assert len([m async for m in session.messages()]) == 3
    assert sorted([p.id async for p in honcho.peers()]) == ["alice", "bob", "carol"]
    assert [s.id async for s in alice.sessions()] == ["s1"]
    assert [s.id async for s in honcho.sessions()] == ["s1"]
    assert await honcho.search("puppy", limit=5)
    assert (await session.context(tokens=500)).messages
    assert (await session.summaries()).short is None
    clone = await session.clone()
    await clone.delete()
    await carol.delete()
    await alice.set_card(["IDENTITY: alice"])
    assert await alice.get_card() == ["IDENTITY: alice"]
    about_bob = alice.conclusions_of(bob)
    [fact] = await about_bob.create([{"content": "bob likes dogs", "session_id": "s1"}])
    assert [c.id async for c in about_bob.list()] == [fact.id]
    assert [c.id for c in await about_bob.query("dogs")] == [fact.id]
    assert "dogs" in await session.representation(alice, target=bob)
    assert "dogs" in (await alice.context(bob)).representation
    await about_bob.delete(fact.id)
    assert "Biscuit" in await alice.chat("What is the puppy called?")
    assert "Biscuit" in await alice.chat_stream("What is the puppy called?").read()
    assert await honcho.schedule_dream(alice, session, bob) in (True, False)
    assert (await honcho.queue_status(alice)).totals.failed == 0
    endpoint = await honcho.create_webhook(WEBHOOK_URL)
    assert [w.id async for w in honcho.webhooks()] == [endpoint.id]
    await honcho.test_webhook()
    await honcho.delete_webhook(endpoint)
    team = await honcho.scope("team", metadata={"k": "v"})
    assert (await honcho.get_scope("team")).metadata == {"k": "v"}
    assert [s.id async for s in honcho.scopes()] == ["team"]
    assert await team.add_sessions([session]) == 1
    assert [s.id async for s in team.sessions()] == ["s1"]
    assert list(await team.status()) == ["s1"]
    assert "Biscuit" in await alice.chat("What is the puppy called?", scope=team)
    assert await team.remove_session(session)
    async with honcho.events(session=session) as feed:
        await feed.ready()
    with pytest.raises(FailedPreconditionError) as refused:
        await honcho.create_key(peer=alice)
    assert refused.value.reason == "AUTH_DISABLED"
    await honcho.delete_workspace()


async def test_sync_client_calls_every_rpc(server: Running, ws: str) -> None:
    recorder = Recorder()
    channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{server.port}"),
                                     recorder)

    def scenario() -> None:
        with Honcho(workspace_id=ws, channel=channel) as honcho:
            every_sync_wrapper(honcho)

    try:
        await asyncio.to_thread(scenario)
    finally:
        channel.close()
    assert not missing(recorder.methods), f"Honcho lacks {missing(recorder.methods)}"


async def test_async_client_calls_every_rpc(server: Running, ws: str) -> None:
    recorder = AsyncRecorder()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}",
                                        interceptors=recorder.interceptors)
    async with channel, AsyncHoncho(workspace_id=ws, channel=channel) as honcho:
        await every_async_wrapper(honcho)
    assert not missing(recorder.methods), f"AsyncHoncho lacks {missing(recorder.methods)}"
