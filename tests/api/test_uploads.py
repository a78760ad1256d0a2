"""Hostile uploads answer INVALID_ARGUMENT naming the limit they hit, in bounded time, off the
event loop, and store nothing: deep JSON, lone surrogates, PDFs that inflate, long names,
out-of-range times."""

from __future__ import annotations

import asyncio
import time

import grpc
from google.protobuf import timestamp_pb2
from honcho_grpc_proto.v1 import message_pb2, workspace_pb2

from honcho_grpc.db.pool import Database
from tests.api.test_messages import count, upload
from tests.conftest import Stubs
from tests.helpers import fails
from tests.pdfs import pdf_with_stream, text_page

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def header_upload(ws: str, data: bytes, **header: object):  # type: ignore[no-untyped-def]
    async def parts():  # type: ignore[no-untyped-def]
        fields = {"workspace_id": ws, "session_id": "docs", "peer_id": "alice",
                  "filename": "f", "content_type": "text/plain", **header}
        yield message_pb2.UploadFileRequest(header=message_pb2.UploadFileHeader(**fields))
        yield message_pb2.UploadFileRequest(chunk=data)

    return parts()


async def test_hostile_json(stubs: Stubs, db: Database, ws: str) -> None:
    for data in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 500 + b"1" + b"}" * 500):
        await fails(stubs.messages.UploadFile(upload(ws, data, "application/json")), INVALID,
                    reason="FILE_JSON_TOO_DEEP", field="chunk")
    await fails(stubs.messages.UploadFile(upload(ws, b'{"name": "\\ud800"}',
                                                 "application/json")),
                INVALID, reason="FILE_NOT_TEXT", field="chunk")
    assert await count(db, "messages", ws) == 0


async def test_hostile_pdfs_are_bounded(stubs: Stubs, db: Database, ws: str) -> None:
    # 300 MB of spaces in 290 kB; then 60 MB of text operators that take seconds to walk.
    for data in (pdf_with_stream(b" " * 300_000_000),
                 pdf_with_stream(b"BT /F1 12 Tf (AAAAAAAA) Tj ET\n" * 2_000_000)):
        started = time.perf_counter()
        beats = 0

        async def heartbeat() -> None:  # the event loop keeps running meanwhile
            nonlocal beats
            while True:
                await asyncio.sleep(0.05)
                beats += 1

        ticker = asyncio.create_task(heartbeat())
        failure = await fails(stubs.messages.UploadFile(upload(ws, data, "application/pdf",
                                                               chunk=1 << 20)), INVALID,
                              field="chunk")
        ticker.cancel()
        assert failure.info.reason in {"FILE_TOO_LARGE_INFLATED", "FILE_PARSE_TIMEOUT",
                                       "FILE_TEXT_TOO_LARGE"}, failure.info.reason
        elapsed = time.perf_counter() - started
        assert elapsed < 15
        assert beats >= elapsed / 0.05 * 0.5
    assert await count(db, "messages", ws) == 0
    ok = await stubs.messages.UploadFile(upload(ws, text_page("still fine"), "application/pdf"))
    assert "still fine" in ok.messages[0].content


async def test_header_limits(stubs: Stubs, db: Database, ws: str) -> None:
    await fails(stubs.messages.UploadFile(header_upload(ws, b"hi", filename="f" * 256)),
                INVALID, field="header.filename")
    far = timestamp_pb2.Timestamp(seconds=2**40)  # beyond year 9999: not a valid Timestamp
    await fails(stubs.messages.UploadFile(header_upload(ws, b"hi", create_time=far)),
                INVALID, field="header.create_time")
    await fails(stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[message_pb2.MessageInput(
            peer_id="p", content="x", create_time=far)])), INVALID,
        field="messages[0].create_time")
    await fails(stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id=ws)), grpc.StatusCode.NOT_FOUND)
    assert await count(db, "messages", ws) == 0
