"""The Python client (clients/python) against the live in-process server, plus a scripted
fake server for what the real one cannot be made to do on demand (UNAVAILABLE for retries,
auth failures, slow answers for deadlines).

The server runs on the test session's event loop, so each synchronous scenario runs in a
worker thread (`asyncio.to_thread`) while the loop serves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from honcho_grpc_client import (
    NO_RETRY,
    AsyncHoncho,
    ChatAnswer,
    DeadlineExceededError,
    Honcho,
    HonchoError,
    InvalidArgumentError,
    MessageCreate,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    SessionPeerConfig,
    UnauthenticatedError,
    UnavailableError,
)
from honcho_grpc_proto.v1 import peer_pb2, peer_pb2_grpc, resources_pb2

from honcho_grpc.server.app import Running

from .conftest import CLIENT_SRC

ROOT = CLIENT_SRC.parents[2]
PROTO_SRC = ROOT / "proto" / "python" / "src"


@pytest.fixture
def address(server: Running) -> str:
    return f"127.0.0.1:{server.port}"


# --------------------------------------------------------------------------- sync, live


def _sync_resources_and_paging(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice = honcho.peer("alice", metadata={"role": "user", "age": 31})
        assert alice.metadata == {"role": "user", "age": 31}  # integral numbers stay int
        bob = honcho.peer("bob")  # lazy: nothing created yet
        assert bob.metadata is None
        session = honcho.session("s1", metadata={"topic": "travel"})
        assert session.metadata == {"topic": "travel"} and session.active

        members = session.add_peers([alice, (bob, SessionPeerConfig(observe_others=True))])
        assert {m.peer_id for m in members} == {"alice", "bob"}
        assert session.peer_config("bob").observe_others is True
        assert {p.id for p in session.peers()} == {"alice", "bob"}

        # 250 messages: split into batches of 100, 100, 50, kept in order.
        written = session.add_messages(
            [(alice if i % 2 == 0 else bob).message(f"message number {i}", metadata={"i": i})
             for i in range(250)])
        assert [m.sequence for m in written] == list(range(1, 251))
        assert written[0].peer_id == "alice" and written[1].peer_id == "bob"
        assert written[7].metadata == {"i": 7}

        listed = list(session.messages(page_size=40))  # 7 pages
        assert [m.id for m in listed] == [m.id for m in written]
        assert next(iter(session.messages(reverse=True))).sequence == 250
        by_bob = list(session.messages(filters={"peer_id": "bob"}))
        assert len(by_bob) == 125 and {m.peer_id for m in by_bob} == {"bob"}

        first = written[0]
        assert session.get_message(first.id).content == "message number 0"
        assert session.update_message(first.id, {"edited": True}).metadata == {"edited": True}
        session.delete_message(written[1].id)
        with pytest.raises(NotFoundError):
            session.get_message(written[1].id)

        # single message, caller-supplied time
        when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
        [one] = session.add_messages(alice.message("back from Lisbon", created_at=when))
        assert one.created_at == when and one.sequence == 251

        assert {p.id for p in honcho.peers()} >= {"alice", "bob"}
        assert [s.id for s in honcho.sessions()] == ["s1"]
        assert [s.id for s in alice.sessions()] == ["s1"]

        alice.set_metadata({"role": "admin"})
        assert alice.get_metadata() == {"role": "admin"}
        alice.set_configuration({"observe_me": False})
        assert alice.get_configuration() == {"observe_me": False}
        session.set_configuration({"reasoning": {"enabled": False}})
        assert session.get_configuration() == {"reasoning": {"enabled": False}}
        honcho.set_metadata({"app": "tests"})
        assert honcho.get_metadata() == {"app": "tests"}
        assert ws in set(honcho.workspaces())

        clone = session.clone(message_id=written[9].id, new_session_id="s1-copy")
        assert clone.id == "s1-copy"
        assert len(list(clone.messages())) == 9  # message 2 was deleted

        session.remove_peers("bob")
        assert [m.peer_id for m in session.members()] == ["alice"]
        assert {m.peer_id for m in session.members(include_inactive=True)} == {"alice", "bob"}


async def test_sync_resources_and_paging(address: str, ws: str) -> None:
    await asyncio.to_thread(_sync_resources_and_paging, address, ws)


def _sync_search_context_cards(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice, tutor = honcho.peer("alice"), honcho.peer("tutor")
        session = honcho.session("lesson")
        session.add_messages([
            alice.message("I keep mixing up numerators and denominators"),
            tutor.message("Let's draw a pizza cut into eight slices"),
            alice.message("Oh, the pizza picture makes fractions click for me"),
        ])
        other = honcho.session("other")
        other.add_messages([alice.message("My cat is called Pixel")])

        hits = session.search("pizza fractions")
        assert hits and all(h.session_id == "lesson" for h in hits)
        assert hits[0].score is not None
        assert {h.session_id for h in honcho.search("pizza")} == {"lesson"}
        assert any("Pixel" in h.content for h in honcho.search("cat Pixel"))
        assert {h.peer_id for h in tutor.search("pizza")} == {"tutor"}
        assert honcho.search("pizza", filters={"peer_id": "alice"})[0].peer_id == "alice"

        ctx = session.context(tokens=2000)
        assert ctx.messages[0].content.startswith("I keep mixing")
        chat = ctx.to_openai(assistant=tutor)
        assert [m["role"] for m in chat] == ["user", "assistant", "user"]
        assert chat[0]["name"] == "alice"
        assert ctx.to_anthropic(assistant=tutor)[0]["content"].startswith("alice: ")
        assert len(session.context(tokens=15).messages) < 3  # the budget is honoured

        assert alice.card() == []
        alice.set_card(["IDENTITY: alice, a student", "ATTRIBUTE: learns visually"])
        assert alice.card() == ["IDENTITY: alice, a student", "ATTRIBUTE: learns visually"]
        tutor.set_card(["ATTRIBUTE: likes pizza analogies"], target=alice)
        assert tutor.card(alice) == ["ATTRIBUTE: likes pizza analogies"]

        stored = tutor.add_conclusions(["alice learns fractions best with pictures"],
                                       about=alice, session=session)
        assert stored[0].level == "explicit" and stored[0].observer_id == "tutor"
        assert [c.id for c in tutor.conclusions(alice)] == [stored[0].id]
        assert tutor.query_conclusions("how does alice learn", about="alice")[0].id == \
            stored[0].id
        assert "pictures" in tutor.representation(target=alice)
        peer_ctx = tutor.context(alice)
        assert peer_ctx.peer_card == ["ATTRIBUTE: likes pizza analogies"]
        assert "pictures" in peer_ctx.representation
        ctx = session.context(tokens=2000, peer_target=alice, peer_perspective=tutor)
        assert "pictures" in ctx.peer_representation
        assert "pizza analogies" in ctx.to_openai(tutor)[0]["content"]
        honcho.delete_conclusion(stored[0].id)
        assert list(tutor.conclusions(alice)) == []
        summaries = session.summaries()
        assert summaries.session_id == "lesson"
        status = honcho.queue_status()
        assert status.totals.failed == 0


async def test_sync_search_context_cards(address: str, ws: str) -> None:
    await asyncio.to_thread(_sync_search_context_cards, address, ws)


def _sync_chat(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice = honcho.peer("alice")
        honcho.session("s").add_messages([alice.message("I work as a nurse in Lyon")])
        [fact] = alice.add_conclusions(["alice works as a nurse in Lyon"])

        answer = alice.chat("What is alice's job as a nurse?")
        assert "nurse" in answer and isinstance(answer, ChatAnswer)
        assert fact.id in answer.conclusion_ids and answer.output_tokens > 0

        stream = alice.chat("What is alice's job as a nurse?", stream=True)
        deltas = list(stream)
        assert len(deltas) > 1 and "".join(deltas) == stream.text == answer
        assert stream.completion is not None and stream.completion.finish_reason == "stop"
        assert fact.id in stream.completion.conclusion_ids

        with alice.chat("Where does alice work?", stream=True, session="s",
                        reasoning_level="minimal") as early:
            assert next(iter(early))  # one delta, then stop listening: the call is cancelled
        assert early.completion is None

        with pytest.raises(ValueError, match="reasoning_level"):
            alice.chat("x", reasoning_level="extreme")


async def test_sync_chat(address: str, ws: str) -> None:
    await asyncio.to_thread(_sync_chat, address, ws)


def _sync_errors(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        with pytest.raises(NotFoundError) as missing:
            honcho.session("nope", create=False).refresh()
        err = missing.value
        assert isinstance(err, HonchoError) and err.code == grpc.StatusCode.NOT_FOUND
        assert err.reason == "SESSION_NOT_FOUND" and err.domain == "honcho.dev"
        assert "nope" in err.metadata.values()
        assert "SESSION_NOT_FOUND" in str(err)

        with pytest.raises(InvalidArgumentError) as bad:
            honcho.peer("not a valid id!", create=True)
        assert bad.value.field_violations, "BadRequest details are parsed"
        assert any("peer_id" in v.field for v in bad.value.field_violations)
        assert bad.value.reason

        with pytest.raises(InvalidArgumentError) as bad_filter:
            list(honcho.session("s").messages(filters={"peer_id": {"regex": "x"}}))
        assert bad_filter.value.field_violations[0].field.startswith("filters")

        with pytest.raises(InvalidArgumentError):
            honcho.session("s").add_messages([MessageCreate(peer_id="alice", content="")])


async def test_sync_errors(address: str, ws: str) -> None:
    await asyncio.to_thread(_sync_errors, address, ws)


def _sync_import_and_upload(address: str, ws: str, tmp: Path) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice = honcho.peer("alice")
        session = honcho.session("bulk")
        count = session.import_messages(
            (alice.message(f"imported {i}") for i in range(1500)), chunk_size=600)
        assert count == 1500
        assert sum(1 for _ in session.messages()) == 1500

        notes = tmp / "notes.txt"
        notes.write_text("First paragraph about gardening.\n\nSecond one about tomatoes.\n")
        created = session.upload_file(notes, alice, metadata={"source": "upload"})
        assert created and all(m.peer_id == "alice" for m in created)
        assert "gardening" in created[0].content
        assert created[0].metadata.get("source") == "upload"
        raw = session.upload_file(b'{"a": 1}', "alice", filename="data.json")
        assert raw and raw[0].sequence > created[-1].sequence


async def test_sync_import_and_upload(address: str, ws: str, tmp_path: Path) -> None:
    await asyncio.to_thread(_sync_import_and_upload, address, ws, tmp_path)


# --------------------------------------------------------------------------- async, live


async def test_async_client_end_to_end(address: str, ws: str) -> None:
    async with AsyncHoncho(address=address, workspace_id=ws) as honcho:
        alice = await honcho.peer("alice", metadata={"name": "Alice"})
        bob = await honcho.peer("bob")
        assert alice.metadata == {"name": "Alice"} and bob.metadata is None
        session = await honcho.session("s1", peers=[alice, bob])
        assert {m.peer_id for m in await session.members()} == {"alice", "bob"}

        written = await session.add_messages(
            [alice.message(f"hello {i}") if i % 3 else bob.message(f"hi {i}")
             for i in range(150)])
        assert len(written) == 150
        listed = [m async for m in session.messages(page_size=64)]
        assert [m.sequence for m in listed] == list(range(1, 151))
        assert [p.id async for p in honcho.peers()] == ["alice", "bob"]
        assert [s.id async for s in alice.sessions()] == ["s1"]

        await session.add_messages([alice.message("I work as a nurse in Lyon")])
        [fact] = await alice.add_conclusions(["alice works as a nurse in Lyon"])
        assert [c.id async for c in alice.conclusions()] == [fact.id]
        hits = await session.search("nurse Lyon")
        assert hits[0].content == "I work as a nurse in Lyon"
        assert (await honcho.search("nurse"))[0].session_id == "s1"
        assert (await alice.search("nurse"))[0].peer_id == "alice"

        ctx = await session.context(tokens=50)
        assert ctx.messages and ctx.messages[-1].content == "I work as a nurse in Lyon"

        await alice.set_card(["IDENTITY: Alice, a nurse"])
        assert await alice.card() == ["IDENTITY: Alice, a nurse"]
        await alice.set_metadata({"name": "Alice", "city": "Lyon"})
        assert (await alice.get_metadata())["city"] == "Lyon"

        answer = await alice.chat("What is alice's job as a nurse?")
        assert "nurse" in answer and fact.id in answer.conclusion_ids
        stream = alice.chat("What is alice's job as a nurse?", stream=True)
        deltas = [d async for d in stream]
        assert len(deltas) > 1 and stream.text == answer
        assert stream.completion is not None and stream.completion.output_tokens > 0
        also = await alice.chat("What is alice's job as a nurse?", stream=True)
        assert await also.read() == answer
        async with alice.chat("What does alice do?", stream=True) as early:
            async for _ in early:
                break

        with pytest.raises(NotFoundError) as missing:
            await (await honcho.session("missing", create=False)).refresh()
        assert missing.value.reason == "SESSION_NOT_FOUND"
        with pytest.raises(InvalidArgumentError) as bad:
            await honcho.peer("bad id!", create=True)
        assert bad.value.field_violations

        assert (await honcho.queue_status()).totals.failed == 0
        await session.delete()
        with pytest.raises(NotFoundError):
            await session.refresh()


async def test_async_import_upload_and_clone(address: str, ws: str) -> None:
    async with AsyncHoncho(address=address, workspace_id=ws) as honcho:
        alice = await honcho.peer("alice")
        session = await honcho.session("bulk")
        assert await session.import_messages([alice.message(f"m{i}") for i in range(300)],
                                             chunk_size=128) == 300
        uploaded = await session.upload_file(b"A note about sailing.", alice,
                                             filename="note.txt")
        assert "sailing" in uploaded[0].content
        copy = await session.clone(new_session_id="bulk-copy")
        assert len([m async for m in copy.messages()]) == 301


async def test_async_events_feed(address: str, ws: str) -> None:
    async with AsyncHoncho(address=address, workspace_id=ws) as honcho:
        alice = await honcho.peer("alice")
        session = await honcho.session("watched", create=True)
        async with honcho.events(session=session, types=["messages_created"]) as feed:
            await feed.ready()  # listening: nothing committed from now on is missed
            await session.add_messages([alice.message("hello events")])
            async with asyncio.timeout(20):
                event = await anext(aiter(feed))
        assert event.type == "messages_created" and event.session_id == "watched"
        assert event.workspace_id == ws and event.time is not None


def _sync_events_feed(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice, session = honcho.peer("alice"), honcho.session("watched-sync", create=True)
        with honcho.events(session=session) as feed:
            feed.ready()
            session.add_messages([alice.message("hello sync events")])
            event = next(iter(feed))
        assert event.type == "messages_created" and event.session_id == "watched-sync"


async def test_sync_events_feed(address: str, ws: str) -> None:
    await asyncio.wait_for(asyncio.to_thread(_sync_events_feed, address, ws), 30)


# --------------------------------------------------------------------------- fake server


def _status(code: grpc.StatusCode, message: str, reason: str, *,
            violations: list[tuple[str, str]] = (),  # type: ignore[assignment]
            retry_after: float | None = None) -> grpc.Status:
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="honcho.dev",
                                          metadata={"peerId": "p"}))
    details.append(info)
    if violations:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations]))
        details.append(bad)
    if retry_after is not None:
        retry = any_pb2.Any()
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(retry_after * 1000))
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry)
    status: grpc.Status = rpc_status.to_status(status_pb2.Status(
        code=getattr(code_pb2, code.name), message=message, details=details))
    return status


class FakePeers(peer_pb2_grpc.PeerServiceServicer):  # type: ignore[misc]
    """GetPeer answers from a script: a list of statuses to fail with, then success."""

    def __init__(self) -> None:
        self.script: list[grpc.Status] = []
        self.calls = 0
        self.metadata: list[dict[str, str]] = []
        self.delay = 0.0

    async def GetPeer(self, request: peer_pb2.GetPeerRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> peer_pb2.GetPeerResponse:
        self.calls += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()
                              if isinstance(v, str)})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            await context.abort_with_status(self.script.pop(0))
        return peer_pb2.GetPeerResponse(peer=resources_pb2.Peer(
            id=request.peer_id, workspace_id=request.workspace_id))


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakePeers, str]]:
    servicer = FakePeers()
    server = grpc.aio.server()
    peer_pb2_grpc.add_PeerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)


async def test_unavailable_is_retried_with_backoff(fake: tuple[FakePeers, str]) -> None:
    servicer, address = fake
    unavailable = _status(grpc.StatusCode.UNAVAILABLE, "db down", "DATABASE_UNAVAILABLE",
                          retry_after=1.0)
    servicer.script = [unavailable, unavailable]

    def sync_call() -> None:
        with Honcho(address=address, workspace_id="w", retry=FAST_RETRY) as honcho:
            assert honcho.peer("p").refresh().id == "p"

    await asyncio.to_thread(sync_call)
    assert servicer.calls == 3

    servicer.calls, servicer.script = 0, [unavailable] * 2
    async with AsyncHoncho(address=address, workspace_id="w", retry=FAST_RETRY) as honcho:
        assert (await (await honcho.peer("p")).refresh()).id == "p"
    assert servicer.calls == 3

    # Attempts exhausted: the last status surfaces, typed, with its RetryInfo.
    servicer.calls, servicer.script = 0, [unavailable] * 10
    async with AsyncHoncho(address=address, workspace_id="w", retry=FAST_RETRY) as honcho:
        with pytest.raises(UnavailableError) as caught:
            await (await honcho.peer("p")).refresh()
    assert servicer.calls == 4
    assert caught.value.reason == "DATABASE_UNAVAILABLE" and caught.value.retry_delay == 1.0

    servicer.calls, servicer.script = 0, [unavailable]
    async with AsyncHoncho(address=address, workspace_id="w", retry=NO_RETRY) as honcho:
        with pytest.raises(UnavailableError):
            await (await honcho.peer("p")).refresh()
    assert servicer.calls == 1


async def test_other_codes_are_not_retried(fake: tuple[FakePeers, str]) -> None:
    servicer, address = fake
    servicer.script = [_status(grpc.StatusCode.INVALID_ARGUMENT, "peer_id: bad", "INVALID_ID",
                               violations=[("peer_id", "must match [A-Za-z0-9_-]+")])]
    async with AsyncHoncho(address=address, workspace_id="w", retry=FAST_RETRY) as honcho:
        with pytest.raises(InvalidArgumentError) as caught:
            await (await honcho.peer("p")).refresh()
    assert servicer.calls == 1
    err = caught.value
    assert err.reason == "INVALID_ID" and err.metadata == {"peerId": "p"}
    assert [(v.field, v.description) for v in err.field_violations] == [
        ("peer_id", "must match [A-Za-z0-9_-]+")]


async def test_auth_token_and_auth_errors(fake: tuple[FakePeers, str]) -> None:
    servicer, address = fake
    servicer.script = [
        _status(grpc.StatusCode.UNAUTHENTICATED, "token expired", "TOKEN_EXPIRED"),
        _status(grpc.StatusCode.PERMISSION_DENIED, "not your session", "PERMISSION_DENIED"),
    ]

    def sync_calls() -> None:
        with Honcho(address=address, workspace_id="w", token="secret-jwt") as honcho:
            with pytest.raises(UnauthenticatedError) as unauth:
                honcho.peer("p").refresh()
            assert unauth.value.reason == "TOKEN_EXPIRED"
            with pytest.raises(PermissionDeniedError):
                honcho.peer("p").refresh()

    await asyncio.to_thread(sync_calls)
    assert [m.get("authorization") for m in servicer.metadata] == ["Bearer secret-jwt"] * 2

    os.environ["HONCHO_API_KEY"] = "from-env"
    try:
        async with AsyncHoncho(address=address, workspace_id="w") as honcho:
            await (await honcho.peer("p")).refresh()
    finally:
        del os.environ["HONCHO_API_KEY"]
    assert servicer.metadata[-1]["authorization"] == "Bearer from-env"
    async with AsyncHoncho(address=address, workspace_id="w") as honcho:
        await (await honcho.peer("p")).refresh()
    assert "authorization" not in servicer.metadata[-1]


async def test_default_deadline(fake: tuple[FakePeers, str]) -> None:
    servicer, address = fake
    servicer.delay = 2.0
    async with AsyncHoncho(address=address, workspace_id="w", timeout=0.2) as honcho:
        with pytest.raises(DeadlineExceededError):
            await (await honcho.peer("p")).refresh()


async def test_unreachable_server_is_unavailable() -> None:
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)
    async with AsyncHoncho(address="127.0.0.1:1", workspace_id="w", retry=retry,
                           timeout=5) as honcho:
        with pytest.raises(UnavailableError):
            await (await honcho.peer("p")).refresh()


# --------------------------------------------------------------------------- packaging


def test_generated_stubs_are_fresh() -> None:
    """The committed stubs the client imports match what the generator makes from proto/."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"),
                           "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def test_client_does_not_need_the_server_package() -> None:
    code = ("import sys, honcho_grpc_client; "
            "assert not any(m == 'honcho_grpc' or m.startswith('honcho_grpc.') "
            "for m in sys.modules), 'server package imported'; "
            "assert 'honcho' not in sys.modules")
    # The client and its one dependency of this checkout, the stubs' distribution.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CLIENT_SRC), str(PROTO_SRC)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd="/")
    assert done.returncode == 0, done.stderr


def test_metadata_protobuf_cannot_carry_is_the_callers_value_error() -> None:
    """An integer beyond a double, or nesting beyond protobuf's limit, is a ValueError naming
    metadata (the MCP server shows a ValueError's text as the tool error), not an
    OverflowError or a DecodeError from deep in protobuf."""
    from honcho_grpc_client.types import MessageCreate

    deep: dict[str, Any] = {}
    node = deep
    for _ in range(50):
        node["a"] = {}
        node = node["a"]
    for metadata in ({"n": 10**400}, deep):
        with pytest.raises(ValueError, match="metadata"):
            MessageCreate("p", "hello", metadata=metadata).to_proto()
    assert MessageCreate("p", "hello", metadata={"n": 10**300}).to_proto().metadata["n"] == 1e300
