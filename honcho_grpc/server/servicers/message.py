"""MessageService."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from honcho_grpc_proto.v1 import message_pb2 as pb
from honcho_grpc_proto.v1 import message_pb2_grpc as rpc

from honcho_grpc.domain import files
from honcho_grpc.domain.aio import read_ahead
from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.domain.messages import import_messages, write_messages
from honcho_grpc.errors import resource_exhausted
from honcho_grpc.ids import new_id
from honcho_grpc.providers.tokens import count_tokens_batch
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking
from honcho_grpc.store import messages as store
from honcho_grpc.store import resources
from honcho_grpc.store.messages import NewMessage
from honcho_grpc.store.resources import delete_conclusions_derived_from

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH = 100
MAX_IMPORT_CHUNK = 1000


class MessageServicer(rpc.MessageServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _inputs(self, c: Checker, field: str, inputs: Sequence[pb.MessageInput],
                limit: int) -> list[NewMessage]:
        """Validate message inputs and turn them into rows (token counts included)."""
        if not inputs:
            c.fail(field, "needs at least one message")
        elif len(inputs) > limit:
            c.fail(field, f"holds more than {limit} messages")
            return []
        max_chars = self.deps.settings.app.max_message_chars
        out = []
        counts = count_tokens_batch([m.content for m in inputs])
        for i, (m, tokens) in enumerate(zip(inputs, counts, strict=True)):
            c.id(f"{field}[{i}].peer_id", m.peer_id)
            c.text(f"{field}[{i}].content", m.content, max_chars=max_chars)
            metadata = c.struct(f"{field}[{i}].metadata", m.metadata)
            c.configuration(f"{field}[{i}].configuration", m.configuration)
            out.append(NewMessage(
                message_id=new_id(), peer_id=m.peer_id, content=m.content, metadata=metadata,
                configuration=convert.to_dict(m.configuration), token_count=tokens,
                created_at=_time(c, f"{field}[{i}].create_time", m)))
        return out

    async def CreateMessages(self, request: pb.CreateMessagesRequest,
                             context: Ctx) -> pb.CreateMessagesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.request_id("request_id", request.request_id)
            batch = self._inputs(c, "messages", request.messages, MAX_BATCH)

        async def write(conn: Any) -> pb.CreateMessagesResponse:
            rows = await write_messages(conn, self.deps.settings, request.workspace_id,
                                        request.session_id, batch)
            return pb.CreateMessagesResponse(messages=[convert.message(r) for r in rows])

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="CreateMessages",
                               request=request, response_type=pb.CreateMessagesResponse,
                               write=write)

    async def ImportMessages(self, request_iterator: AsyncIterator[pb.ImportMessagesRequest],
                             context: Ctx) -> pb.ImportMessagesResponse:
        """The whole stream is one transaction: an import lands completely or not at all.
        The next chunk is read and validated while the previous one is written."""
        imported, sessions = 0, set()
        async with self.deps.pool.acquire() as conn, conn.transaction():
            async for chunk, batch in read_ahead(self._import_chunks(request_iterator), 2):
                await import_messages(conn, self.deps.settings, chunk.workspace_id,
                                      chunk.session_id, batch)
                imported += len(batch)
                sessions.add((chunk.workspace_id, chunk.session_id))
        return pb.ImportMessagesResponse(imported_count=imported, session_count=len(sessions))

    async def _import_chunks(self, chunks: AsyncIterator[pb.ImportMessagesRequest]
                             ) -> AsyncIterator[tuple[pb.ImportMessagesRequest,
                                                      list[NewMessage]]]:
        async for chunk in chunks:
            with checking() as c:
                c.id("workspace_id", chunk.workspace_id)
                c.id("session_id", chunk.session_id)
                batch = self._inputs(c, "messages", chunk.messages, MAX_IMPORT_CHUNK)
            yield chunk, batch

    async def UploadFile(self, request_iterator: AsyncIterator[pb.UploadFileRequest],
                         context: Ctx) -> pb.UploadFileResponse:
        header, data = await self._read_upload(request_iterator)
        with checking() as c:
            metadata = c.struct("header.metadata", header.metadata)
            c.configuration("header.configuration", header.configuration)
            created = _time(c, "header.create_time", header)
        text = await files.extract_text(bytes(data), header.content_type)
        chunks = files.split_text(text, self.deps.settings.app.max_message_chars)
        with checking() as c:
            if not chunks:
                c.fail("chunk", "the file holds no text")
        file_id = new_id()
        counts = count_tokens_batch(chunks)
        batch = [
            NewMessage(message_id=new_id(), peer_id=header.peer_id, content=chunk,
                       metadata=metadata, configuration=convert.to_dict(header.configuration),
                       token_count=tokens, created_at=created,
                       internal_metadata={"file_id": file_id, "filename": header.filename,
                                          "chunk_index": i, "total_chunks": len(chunks),
                                          "content_type": header.content_type,
                                          "file_bytes": len(data)})
            for i, (chunk, tokens) in enumerate(zip(chunks, counts, strict=True))
        ]
        async with self.deps.pool.acquire() as conn, conn.transaction():
            rows = await write_messages(conn, self.deps.settings, header.workspace_id,
                                        header.session_id, batch)
        return pb.UploadFileResponse(messages=[convert.message(r) for r in rows])

    async def _read_upload(self, parts: AsyncIterator[pb.UploadFileRequest]
                           ) -> tuple[pb.UploadFileHeader, bytearray]:
        header: pb.UploadFileHeader | None = None
        data = bytearray()
        limit = self.deps.settings.app.max_file_bytes
        async for part in parts:
            with checking() as c:
                if part.HasField("header"):
                    if header is not None:
                        c.fail("header", "must be sent once, first")
                    header = part.header
                    c.id("header.workspace_id", header.workspace_id)
                    c.id("header.session_id", header.session_id)
                    c.id("header.peer_id", header.peer_id)
                    files.check_content_type(header.content_type)
                    files.check_filename(header.filename)
                elif header is None:
                    c.fail("header", "must come before the file's bytes")
                else:
                    data += part.chunk
                    if len(data) > limit:
                        raise _too_large(limit)
        with checking() as c:
            if header is None:
                c.fail("header", "is required")
        assert header is not None
        return header, data

    async def GetMessage(self, request: pb.GetMessageRequest,
                         context: Ctx) -> pb.GetMessageResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("message_id", request.message_id)
        row = await store.get_message(self.deps.pool, request.workspace_id, request.session_id,
                                      request.message_id)
        common.require(row, "message", workspaceId=request.workspace_id,
                       sessionId=request.session_id, messageId=request.message_id)
        return pb.GetMessageResponse(message=convert.message(row))

    async def ListMessages(self, request: pb.ListMessagesRequest,
                           context: Ctx) -> pb.ListMessagesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await store.list_messages(self.deps.pool, request.workspace_id,
                                         request.session_id, filters, request.reverse, size,
                                         request.page_token)
        if not page.rows and not request.page_token:
            session = await resources.get_session(self.deps.pool, request.workspace_id,
                                                  request.session_id)
            common.require(session, "session", workspaceId=request.workspace_id,
                           sessionId=request.session_id)
        return pb.ListMessagesResponse(messages=[convert.message(r) for r in page.rows],
                                       next_page_token=page.next_token)

    async def UpdateMessage(self, request: pb.UpdateMessageRequest,
                            context: Ctx) -> pb.UpdateMessageResponse:
        m = request.message
        with checking() as c:
            c.id("message.workspace_id", m.workspace_id)
            c.id("message.session_id", m.session_id)
            c.id("message.id", m.id)
            c.struct("message.metadata", m.metadata)
            changes = common.mask_changes(m, request.update_mask, {"metadata"}, c,
                                          "update_mask")
        async with self.deps.pool.acquire() as conn:
            if "metadata" in changes:
                row = await store.update_metadata(conn, m.workspace_id, m.session_id, m.id,
                                                  changes["metadata"])
            else:
                row = await store.get_message(conn, m.workspace_id, m.session_id, m.id)
        common.require(row, "message", workspaceId=m.workspace_id, sessionId=m.session_id,
                       messageId=m.id)
        return pb.UpdateMessageResponse(message=convert.message(row))

    async def DeleteMessage(self, request: pb.DeleteMessageRequest,
                            context: Ctx) -> pb.DeleteMessageResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("message_id", request.message_id)
            c.request_id("request_id", request.request_id)

        async def write(conn: Any) -> pb.DeleteMessageResponse:
            await delete_conclusions_derived_from(conn, request.workspace_id,
                                                  message_ids=[request.message_id])
            found = await store.delete_message(conn, request.workspace_id, request.session_id,
                                               request.message_id)
            common.check_found(found, "message", workspaceId=request.workspace_id,
                               sessionId=request.session_id, messageId=request.message_id)
            return pb.DeleteMessageResponse()

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="DeleteMessage",
                               request=request, response_type=pb.DeleteMessageResponse,
                               write=write)


def _time(c: Checker, field: str, source: Any) -> datetime | None:
    if not source.HasField("create_time"):
        return None
    try:
        value: datetime = source.create_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        c.fail(field, "is not a valid timestamp")
        return None
    return value


def _too_large(limit: int) -> Exception:
    return resource_exhausted(f"the file is larger than {limit} bytes", "FILE_TOO_LARGE",
                              limit=str(limit))

