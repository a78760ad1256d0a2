"""MessageService."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from honcho_grpc_proto.v1 import message_pb2 as pb
from honcho_grpc_proto.v1 import message_pb2_grpc as rpc

from honcho_grpc.domain import files, messages
from honcho_grpc.domain.idempotent import Retry
from honcho_grpc.domain.messages import ImportBatch
from honcho_grpc.errors import resource_exhausted
from honcho_grpc.model import MessageDraft
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.limits import bearer_of
from honcho_grpc.server.validate import Checker, checking

T = TypeVar("T")
Ctx = grpc.aio.ServicerContext[Any, Any]


class MessageServicer(rpc.MessageServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _drafts(self, c: Checker, field: str, inputs: Sequence[pb.MessageInput],
                limit: int) -> list[MessageDraft]:
        """Validate message inputs and convert them."""
        if not inputs:
            c.fail(field, "needs at least one message")
        elif len(inputs) > limit:
            c.fail(field, f"holds more than {limit} messages")
            return []
        max_chars = self.deps.settings.app.max_message_chars
        out = []
        for i, m in enumerate(inputs):
            c.id(f"{field}[{i}].peer_id", m.peer_id)
            c.text(f"{field}[{i}].content", m.content, max_chars=max_chars)
            metadata = c.struct(f"{field}[{i}].metadata", m.metadata)
            c.configuration(f"{field}[{i}].configuration", m.configuration)
            out.append(MessageDraft(
                peer_id=m.peer_id, content=m.content, metadata=metadata,
                configuration=convert.to_dict(m.configuration),
                created_at=_time(c, f"{field}[{i}].create_time", m)))
        return out

    async def CreateMessages(self, request: pb.CreateMessagesRequest,
                             context: Ctx) -> pb.CreateMessagesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.request_id("request_id", request.request_id)
            drafts = self._drafts(c, "messages", request.messages, messages.MAX_BATCH)
        return await messages.create(
            self.deps.pool, self.deps.settings, request.workspace_id, request.session_id,
            drafts, Retry(request.request_id, "CreateMessages", request,
                          pb.CreateMessagesResponse),
            lambda stored: pb.CreateMessagesResponse(
                messages=[convert.message(m) for m in stored]))

    async def ImportMessages(self, request_iterator: AsyncIterator[pb.ImportMessagesRequest],
                             context: Ctx) -> pb.ImportMessagesResponse:
        """The whole stream is one transaction: an import lands completely or not at all."""
        chunks = aiter(request_iterator)
        first = await anext(chunks, None)
        if first is None:
            return pb.ImportMessagesResponse()
        with self.deps.streams.slot("import", first.workspace_id, bearer_of(context)):
            imported, sessions = await messages.import_batches(
                self.deps.pool, self.deps.settings,
                self._import_batches(_chain(first, chunks)))
        return pb.ImportMessagesResponse(imported_count=imported, session_count=sessions)

    async def _import_batches(self, chunks: AsyncIterator[pb.ImportMessagesRequest]
                              ) -> AsyncIterator[ImportBatch]:
        async for chunk in chunks:
            with checking() as c:
                c.id("workspace_id", chunk.workspace_id)
                c.id("session_id", chunk.session_id)
                drafts = self._drafts(c, "messages", chunk.messages,
                                      messages.MAX_IMPORT_CHUNK)
            yield ImportBatch(chunk.workspace_id, chunk.session_id, drafts)

    async def UploadFile(self, request_iterator: AsyncIterator[pb.UploadFileRequest],
                         context: Ctx) -> pb.UploadFileResponse:
        parts = aiter(request_iterator)
        first = await anext(parts, None)
        workspace_id = first.header.workspace_id if first is not None else ""
        with self.deps.streams.slot("upload", workspace_id, bearer_of(context)):
            return await self._upload(_chain(first, parts))

    async def _upload(self, request_iterator: AsyncIterator[pb.UploadFileRequest]
                      ) -> pb.UploadFileResponse:
        header, data = await self._read_upload(request_iterator)
        with checking() as c:
            metadata = c.struct("header.metadata", header.metadata)
            c.configuration("header.configuration", header.configuration)
            created = _time(c, "header.create_time", header)
        chunks = await files.text_chunks(bytes(data), header.content_type,
                                         self.deps.settings.app.max_message_chars)
        with checking() as c:
            if not chunks:
                c.fail("chunk", "the file holds no text")
        upload = files.Upload(
            workspace_id=header.workspace_id, session_id=header.session_id,
            peer_id=header.peer_id, filename=header.filename,
            content_type=header.content_type, size=len(data), metadata=metadata,
            configuration=convert.to_dict(header.configuration), created_at=created)
        stored = await messages.upload_file(self.deps.pool, self.deps.settings, upload, chunks)
        return pb.UploadFileResponse(messages=[convert.message(m) for m in stored])

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
        found = await messages.get(self.deps.pool, request.workspace_id, request.session_id,
                                   request.message_id)
        return pb.GetMessageResponse(message=convert.message(found))

    async def ListMessages(self, request: pb.ListMessagesRequest,
                           context: Ctx) -> pb.ListMessagesResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await messages.list_messages(self.deps.pool, request.workspace_id,
                                            request.session_id, filters, request.reverse, size,
                                            request.page_token)
        return pb.ListMessagesResponse(messages=[convert.message(m) for m in page.items],
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
        found = await messages.update(self.deps.pool, m.workspace_id, m.session_id, m.id,
                                      changes)
        return pb.UpdateMessageResponse(message=convert.message(found))

    async def DeleteMessage(self, request: pb.DeleteMessageRequest,
                            context: Ctx) -> pb.DeleteMessageResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("session_id", request.session_id)
            c.id("message_id", request.message_id)
            c.request_id("request_id", request.request_id)
        return await messages.delete(
            self.deps.pool, request.workspace_id, request.session_id, request.message_id,
            Retry(request.request_id, "DeleteMessage", request, pb.DeleteMessageResponse))


def _time(c: Checker, field: str, source: pb.MessageInput | pb.UploadFileHeader
          ) -> datetime | None:
    if not source.HasField("create_time"):
        return None
    try:
        value: datetime = source.create_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        c.fail(field, "is not a valid timestamp")
        return None
    return c.time(field, value)


async def _chain(first: T | None, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """`first` (when there is one), then the rest of the stream it was read from."""
    if first is not None:
        yield first
    async for item in rest:
        yield item


def _too_large(limit: int) -> Exception:
    return resource_exhausted(f"the file is larger than {limit} bytes", "FILE_TOO_LARGE",
                              limit=str(limit))
