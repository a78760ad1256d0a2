"""Messages through the real server: batches, atomicity, sequence numbers under concurrent
writers, request_id replay, import, upload, deletes and their cascades."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    message_pb2,
    peer_pb2,
    session_pb2,
    workspace_pb2,
)

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.helpers import fails
from tests.pdfs import text_page

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def msg(peer: str, content: str, **metadata: object) -> message_pb2.MessageInput:
    m = message_pb2.MessageInput(peer_id=peer, content=content)
    if metadata:
        m.metadata.update(metadata)
    return m


def create(ws: str, session: str, *messages: message_pb2.MessageInput,
           request_id: str = "") -> message_pb2.CreateMessagesRequest:
    return message_pb2.CreateMessagesRequest(workspace_id=ws, session_id=session,
                                             messages=list(messages), request_id=request_id)


async def count(db: Database, table: str, ws: str) -> int:
    return int(await db.pool.fetchval(f"SELECT count(*) FROM {table} WHERE workspace_id = $1",
                                      ws))


async def test_create_batch_autocreates_and_joins(stubs: Stubs, db: Database, ws: str) -> None:
    r = await stubs.messages.CreateMessages(create(
        ws, "s", msg("alice", "I love hiking in the Alps"), msg("bob", "Nice, when?", k=1)))
    assert [m.sequence for m in r.messages] == [1, 2]
    assert all(m.token_count > 0 and m.id for m in r.messages)
    assert r.messages[1].metadata["k"] == 1
    members = await stubs.sessions.ListSessionPeers(session_pb2.ListSessionPeersRequest(
        workspace_id=ws, session_id="s"))
    assert [m.peer_id for m in members.peers] == ["alice", "bob"]
    # Background work was enqueued in the same transaction: both embeddings and reasoning.
    assert await count(db, "queue", ws) == 2
    assert await count(db, "embedding_backlog", ws) + await count(
        db, "message_embeddings", ws) == 2
    got = await stubs.messages.GetMessage(message_pb2.GetMessageRequest(
        workspace_id=ws, session_id="s", message_id=r.messages[0].id))
    assert got.message.content == "I love hiking in the Alps"


async def test_batch_is_atomic(stubs: Stubs, db: Database, ws: str) -> None:
    await fails(stubs.messages.CreateMessages(create(
        ws, "s", msg("alice", "fine"), msg("bob", "x" * 25_001))), INVALID,
        field="messages[1].content")
    await fails(stubs.messages.CreateMessages(create(ws, "s")), INVALID, field="messages")
    await fails(stubs.messages.CreateMessages(create(
        ws, "s", *[msg("a", "m")] * 101)), INVALID, field="messages")
    await fails(stubs.messages.CreateMessages(create(ws, "s", msg("bad peer", "m"))), INVALID,
                field="messages[0].peer_id")
    await fails(stubs.messages.CreateMessages(create(ws, "s", msg("a", "nul\x00"))), INVALID)
    assert await count(db, "messages", ws) == 0
    assert await db.pool.fetchval("SELECT count(*) FROM workspaces WHERE workspace_id = $1",
                                  ws) == 0


async def test_concurrent_writers_get_gap_free_sequences(stubs: Stubs, ws: str) -> None:
    async def writer(i: int) -> None:
        await stubs.messages.CreateMessages(create(
            ws, "busy", *[msg(f"p{i % 3}", f"writer {i} message {j}") for j in range(10)]))

    await asyncio.gather(*(writer(i) for i in range(12)))
    seqs, token = [], ""
    while True:
        page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
            workspace_id=ws, session_id="busy", page_size=100, page_token=token))
        seqs += [m.sequence for m in page.messages]
        token = page.next_page_token
        if not token:
            break
    assert seqs == list(range(1, 121))


async def test_request_id_replays_first_result(stubs: Stubs, db: Database, ws: str) -> None:
    rid = str(uuid.uuid4())
    first = await stubs.messages.CreateMessages(create(ws, "s", msg("a", "hello"),
                                                       request_id=rid))
    again = await stubs.messages.CreateMessages(create(ws, "s", msg("a", "hello"),
                                                       request_id=rid))
    assert first == again
    assert await count(db, "messages", ws) == 1
    await fails(stubs.messages.CreateMessages(create(ws, "s", msg("a", "other"),
                                                     request_id=rid)), INVALID,
                reason="REQUEST_ID_REUSED")
    await fails(stubs.messages.CreateMessages(create(ws, "s", msg("a", "x"),
                                                     request_id="not-a-uuid")), INVALID,
                field="request_id")
    # Concurrent duplicates: one write, identical answers.
    rid2 = str(uuid.uuid4())
    results = await asyncio.gather(*(stubs.messages.CreateMessages(
        create(ws, "s", msg("a", "race"), request_id=rid2)) for _ in range(5)))
    assert all(r == results[0] for r in results)
    assert await count(db, "messages", ws) == 2


async def test_request_id_spellings_name_one_write(stubs: Stubs, db: Database, ws: str) -> None:
    """One UUID spelt five ways is one request id: one write, five identical answers."""
    u = uuid.uuid4()
    spellings = [str(u), str(u).upper(), f"{{{u}}}", f"urn:uuid:{u}", u.hex]
    answers = [await stubs.messages.CreateMessages(create(ws, "s", msg("a", "once"),
                                                          request_id=rid))
               for rid in spellings]
    assert all(a == answers[0] for a in answers)
    assert await count(db, "messages", ws) == 1


async def test_created_at_and_list_filters(stubs: Stubs, ws: str) -> None:
    when = timestamp_pb2.Timestamp(seconds=1_700_000_000)
    m = msg("a", "old news", topic="x")
    m.create_time.CopyFrom(when)
    await stubs.messages.CreateMessages(create(ws, "s", m, msg("b", "new", topic="y")))
    filters = struct_pb2.Struct()
    filters.update({"AND": [{"created_at": {"lt": "2024-01-01T00:00:00Z"}},
                            {"metadata": {"topic": "x"}}]})
    page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", filters=filters))
    assert [x.content for x in page.messages] == ["old news"]
    assert page.messages[0].create_time.seconds == when.seconds
    bad = struct_pb2.Struct()
    bad.update({"peer_id": {"regex": ".*"}})
    await fails(stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", filters=bad)), INVALID)
    mixed = struct_pb2.Struct()
    mixed.update({"metadata": {"topic": {"gte": 1, "x": 2}}})
    await fails(stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", filters=mixed)), INVALID,
        field="filters.metadata.topic")
    injection = struct_pb2.Struct()
    injection.update({"metadata": {"a'; DROP TABLE messages; --": "x"}})
    page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", filters=injection))
    assert list(page.messages) == []
    await fails(stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="missing")), NOT_FOUND, reason="SESSION_NOT_FOUND")


async def test_times_stored_as_infinity_are_refused(stubs: Stubs, db: Database,
                                                    ws: str) -> None:
    """The two instants asyncpg writes as -infinity and infinity (they read back naive and
    broke every sort by time: chat answered INTERNAL) are refused, on every write path; the
    microsecond inside each edge is kept."""
    first = timestamp_pb2.Timestamp(seconds=-62135596800)  # 0001-01-01T00:00:00Z
    last = timestamp_pb2.Timestamp(seconds=253402300799, nanos=999_999_999)
    for edge in (first, last):
        m = msg("a", "at the edge")
        m.create_time.CopyFrom(edge)
        await fails(stubs.messages.CreateMessages(create(ws, "s", msg("a", "fine"), m)), INVALID,
                    field="messages[1].create_time")

        async def one_import(m: message_pb2.MessageInput = m) -> AsyncIterator[
                message_pb2.ImportMessagesRequest]:
            yield message_pb2.ImportMessagesRequest(workspace_id=ws, session_id="s",
                                                    messages=[m])

        await fails(stubs.messages.ImportMessages(one_import()), INVALID,
                    field="messages[0].create_time")
    assert await count(db, "messages", ws) == 0
    inside = msg("a", "just inside")
    inside.create_time.CopyFrom(timestamp_pb2.Timestamp(seconds=-62135596800, nanos=1000))
    await stubs.messages.CreateMessages(create(ws, "s", inside, msg("a", "now")))
    page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s"))
    assert page.messages[0].create_time == inside.create_time


async def test_update_and_delete_message(stubs: Stubs, db: Database, ws: str) -> None:
    r = await stubs.messages.CreateMessages(create(ws, "s", msg("a", "one"), msg("a", "two")))
    target = r.messages[0]
    updated = target.__class__()
    updated.CopyFrom(target)
    updated.metadata.update({"edited": True})
    out = await stubs.messages.UpdateMessage(message_pb2.UpdateMessageRequest(message=updated))
    assert out.message.metadata["edited"] is True and out.message.content == "one"
    # A conclusion derived from the message goes with it.
    await db.pool.execute(
        "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
        "session_id, content, source_message_ids) VALUES ($1, 'c1', 'a', 'a', 's', 'x', $2)",
        ws, [target.id])
    await stubs.messages.DeleteMessage(message_pb2.DeleteMessageRequest(
        workspace_id=ws, session_id="s", message_id=target.id))
    await fails(stubs.messages.GetMessage(message_pb2.GetMessageRequest(
        workspace_id=ws, session_id="s", message_id=target.id)), NOT_FOUND,
        reason="MESSAGE_NOT_FOUND")
    assert await count(db, "conclusions", ws) == 0
    assert await count(db, "messages", ws) == 1
    await fails(stubs.messages.DeleteMessage(message_pb2.DeleteMessageRequest(
        workspace_id=ws, session_id="s", message_id=target.id)), NOT_FOUND)


async def test_deletes_cascade(stubs: Stubs, db: Database, ws: str) -> None:
    for s in ("s1", "s2"):
        await stubs.messages.CreateMessages(create(ws, s, msg("alice", f"hi in {s}"),
                                                   msg("bob", "hey")))
    await stubs.conclusions.CreateConclusions(conclusion_pb2.CreateConclusionsRequest(
        workspace_id=ws, conclusions=[conclusion_pb2.ConclusionInput(
            observer_id="bob", observed_id="alice", session_id="s1", content="alice says hi")]))
    await stubs.sessions.DeleteSession(session_pb2.DeleteSessionRequest(workspace_id=ws,
                                                                        session_id="s1"))
    assert await count(db, "messages", ws) == 2
    assert await count(db, "conclusions", ws) == 0
    assert await db.pool.fetchval("SELECT count(*) FROM queue WHERE workspace_id = $1 "
                                  "AND session_id = 's1'", ws) == 0
    await stubs.peers.DeletePeer(peer_pb2.DeletePeerRequest(workspace_id=ws, peer_id="alice"))
    assert await count(db, "messages", ws) == 1
    await stubs.workspaces.DeleteWorkspace(workspace_pb2.DeleteWorkspaceRequest(
        workspace_id=ws))
    for table in ("messages", "peers", "sessions", "session_peers", "queue",
                  "embedding_backlog", "message_embeddings", "conclusions"):
        assert await count(db, table, ws) == 0, table


async def test_delete_is_idempotent_with_request_id(stubs: Stubs, ws: str) -> None:
    await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s"))
    rid = str(uuid.uuid4())
    req = session_pb2.DeleteSessionRequest(workspace_id=ws, session_id="s", request_id=rid)
    await stubs.sessions.DeleteSession(req)
    await stubs.sessions.DeleteSession(req)  # the replay succeeds instead of NOT_FOUND
    await fails(stubs.sessions.DeleteSession(session_pb2.DeleteSessionRequest(
        workspace_id=ws, session_id="s")), NOT_FOUND)


async def test_import_messages(stubs: Stubs, db: Database, ws: str) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for c in range(5):
            yield message_pb2.ImportMessagesRequest(
                workspace_id=ws, session_id=f"s{c % 2}",
                messages=[msg(f"p{i % 4}", f"chunk {c} line {i}") for i in range(200)])

    r = await stubs.messages.ImportMessages(chunks())
    assert r.imported_count == 1000 and r.session_count == 2
    assert await count(db, "messages", ws) == 1000
    seqs = await db.pool.fetch("SELECT seq FROM messages WHERE workspace_id = $1 "
                               "AND session_id = 's0' ORDER BY seq", ws)
    assert [x["seq"] for x in seqs] == list(range(1, 601))


async def test_import_stores_what_create_would(stubs: Stubs, db: Database, ws: str) -> None:
    """Imports are copied in (binary COPY) rather than inserted: the stored rows, the
    embedding backlog and the jobs must be those CreateMessages gives the same input."""
    when = timestamp_pb2.Timestamp(seconds=1_700_000_000)
    inputs = [msg("alice", "first", topic="hiking", depth={"a": [1, 2]}),
              message_pb2.MessageInput(peer_id="bob", content="second", create_time=when)]

    async def chunks():  # type: ignore[no-untyped-def]
        yield message_pb2.ImportMessagesRequest(workspace_id=ws, session_id="imp",
                                                messages=inputs)

    await stubs.messages.ImportMessages(chunks())
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="new", messages=inputs))
    columns = ("seq, peer_id, content, metadata, configuration, internal_metadata, "
               "token_count, search_text, created_at = timestamptz '2023-11-14 22:13:20Z'")
    stored = [await db.pool.fetch(f"SELECT {columns} FROM messages WHERE workspace_id = $1 "
                                  "AND session_id = $2 ORDER BY seq", ws, s)
              for s in ("imp", "new")]
    assert [dict(r) for r in stored[0]] == [dict(r) for r in stored[1]]
    assert stored[0][0]["metadata"] == {"topic": "hiking", "depth": {"a": [1, 2]}}
    assert [r["?column?"] for r in stored[0]] == [False, True]
    side = [await db.pool.fetchrow(
        "SELECT (SELECT count(*) FROM embedding_backlog b JOIN messages m USING "
        " (workspace_id, message_id) WHERE m.workspace_id = $1 AND m.session_id = $2) AS backlog,"
        " (SELECT array_agg(payload - 'message_id' ORDER BY id) FROM queue "
        "  WHERE workspace_id = $1 AND session_id = $2) AS jobs", ws, s)
        for s in ("imp", "new")]
    assert side[0]["backlog"] == side[1]["backlog"] == 2
    assert side[0]["jobs"] == side[1]["jobs"] and len(side[0]["jobs"]) == 2


async def test_import_is_all_or_nothing(stubs: Stubs, db: Database, ws: str) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield message_pb2.ImportMessagesRequest(workspace_id=ws, session_id="s",
                                                messages=[msg("a", "good")] * 10)
        yield message_pb2.ImportMessagesRequest(workspace_id=ws, session_id="s",
                                                messages=[msg("a", "")])

    await fails(stubs.messages.ImportMessages(chunks()), INVALID, field="messages[0].content")
    assert await count(db, "messages", ws) == 0


def upload(ws: str, data: bytes, content_type: str, chunk: int = 1000):  # type: ignore[no-untyped-def]
    async def parts():  # type: ignore[no-untyped-def]
        yield message_pb2.UploadFileRequest(header=message_pb2.UploadFileHeader(
            workspace_id=ws, session_id="docs", peer_id="alice", filename="f",
            content_type=content_type))
        for i in range(0, len(data), chunk):
            yield message_pb2.UploadFileRequest(chunk=data[i:i + chunk])

    return parts()


async def test_upload_text_and_json(stubs: Stubs, ws: str) -> None:
    text = ("A paragraph about hiking. " * 800 + "\n\n") * 3  # ~62k chars -> several chunks
    r = await stubs.messages.UploadFile(upload(ws, text.encode(), "text/plain"))
    assert len(r.messages) >= 3
    assert all(len(m.content) <= 25_000 for m in r.messages)
    assert "".join(m.content for m in r.messages).replace(" ", "") == text.replace(
        " ", "").replace("\n", "")
    r = await stubs.messages.UploadFile(upload(ws, json.dumps({"a": [1, 2]}).encode(),
                                               "application/json"))
    assert json.loads(r.messages[0].content) == {"a": [1, 2]}
    await fails(stubs.messages.UploadFile(upload(ws, b"{not json", "application/json")),
                INVALID, reason="FILE_NOT_JSON")
    await fails(stubs.messages.UploadFile(upload(ws, b"x", "image/png")), INVALID,
                field="header.content_type")


async def test_upload_pdf(stubs: Stubs, ws: str) -> None:
    r = await stubs.messages.UploadFile(upload(ws, text_page("Hello from a PDF"),
                                               "application/pdf"))
    assert "Hello from a PDF" in r.messages[0].content
    await fails(stubs.messages.UploadFile(upload(ws, b"%PDF-garbage", "application/pdf")),
                INVALID, reason="FILE_NOT_PDF")
