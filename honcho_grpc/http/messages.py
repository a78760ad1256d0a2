"""/v3/workspaces/{workspace_id}/sessions/{session_id}/messages."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from honcho_grpc_proto.v1 import message_pb2 as pb
from honcho_grpc_proto.v1 import resources_pb2

from honcho_grpc.domain import files, messages
from honcho_grpc.errors import resource_exhausted
from honcho_grpc.http import shapes
from honcho_grpc.http.body import StrictJsonRoute
from honcho_grpc.http.common import (
    Capture,
    Paging,
    authorize,
    configuration,
    deps,
    metadata,
    once,
    or_empty,
    paginate,
)
from honcho_grpc.model import Message, MessageDraft
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking

router = APIRouter(prefix="/v3/workspaces/{workspace_id}/sessions/{session_id}/messages",
                   route_class=StrictJsonRoute)
Json = dict[str, Any]


def _drafts(c: Checker, d: Deps, items: list[shapes.MessageIn]) -> list[MessageDraft]:
    out = []
    for i, m in enumerate(items):
        c.id(f"messages[{i}].peer_id", m.peer_id)
        c.text(f"messages[{i}].content", m.content, max_chars=d.settings.app.max_message_chars)
        out.append(MessageDraft(
            peer_id=m.peer_id, content=m.content,
            metadata=metadata(c, f"messages[{i}].metadata", m.metadata),
            configuration=configuration(c, f"messages[{i}].configuration", m.configuration,
                                        resources_pb2.MessageConfiguration),
            created_at=c.time(f"messages[{i}].created_at", m.created_at)))
    return out


@router.post("", status_code=201)
@router.post("/", status_code=201, include_in_schema=False)
async def create(workspace_id: str, session_id: str, body: shapes.CreateMessages,
                 request: Request, d: Deps = Depends(deps)) -> list[Json]:
    await authorize(request, "MessageService/CreateMessages", pb.CreateMessagesRequest(
        workspace_id=workspace_id, session_id=session_id,
        messages=[pb.MessageInput(peer_id=m.peer_id) for m in body.messages]))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id)
        drafts = _drafts(c, d, body.messages)
    stored: Capture[list[Message]] = Capture()
    await messages.create(d.pool, d.settings, workspace_id, session_id, drafts,
                          once("CreateMessages"), stored)
    return [shapes.message(m) for m in stored.value]


@router.post("/list")
async def list_messages(workspace_id: str, session_id: str, request: Request,
                        body: shapes.ListBody | None = None, paging: Paging = Depends(),
                        d: Deps = Depends(deps)) -> Json:
    await authorize(request, "MessageService/ListMessages", pb.ListMessagesRequest(
        workspace_id=workspace_id, session_id=session_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id)
    filters = body.filters if body else None
    return await or_empty(paginate(
        paging, lambda size, token: messages.list_messages(
            d.pool, workspace_id, session_id, filters, paging.reverse, size, token),
        shapes.message), "SESSION_NOT_FOUND",
        {"items": [], "total": 0, "page": paging.page, "size": paging.size, "pages": 0})


@router.post("/upload", status_code=201)
async def upload(workspace_id: str, session_id: str, request: Request,
                 file: UploadFile = File(...), peer_id: str = Form(...),
                 metadata_json: str | None = Form(None, alias="metadata"),
                 configuration_json: str | None = Form(None, alias="configuration"),
                 created_at: datetime | None = Form(None),
                 d: Deps = Depends(deps)) -> list[Json]:
    await authorize(request, "MessageService/UploadFile", pb.UploadFileRequest(
        header=pb.UploadFileHeader(workspace_id=workspace_id, session_id=session_id,
                                   peer_id=peer_id)))
    content_type = (file.content_type or "application/octet-stream").split(";")[0].strip()
    filename = file.filename or "upload"
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id)
        c.id("peer_id", peer_id)
        meta = metadata(c, "metadata", _json_object(c, "metadata", metadata_json))
        config = configuration(c, "configuration",
                               _json_object(c, "configuration", configuration_json),
                               resources_pb2.MessageConfiguration)
        created = c.time("created_at", created_at)
    files.check_content_type(content_type)
    files.check_filename(filename)
    limit = d.settings.app.max_file_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise resource_exhausted(f"the file is larger than {limit} bytes", "FILE_TOO_LARGE",
                                 limit=str(limit))
    chunks = await files.text_chunks(data, content_type, d.settings.app.max_message_chars)
    with checking() as c:
        if not chunks:
            c.fail("file", "the file holds no text")
    stored = await messages.upload_file(d.pool, d.settings, files.Upload(
        workspace_id=workspace_id, session_id=session_id, peer_id=peer_id, filename=filename,
        content_type=content_type, size=len(data), metadata=meta, configuration=config,
        created_at=created), chunks)
    return [shapes.message(m) for m in stored]


def _json_object(c: Checker, field: str, text: str | None) -> Json | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        c.fail(field, "must be a JSON object")
        return None
    return value


@router.get("/{message_id}")
async def get(workspace_id: str, session_id: str, message_id: str, request: Request,
              d: Deps = Depends(deps)) -> Json:
    await authorize(request, "MessageService/GetMessage", pb.GetMessageRequest(
        workspace_id=workspace_id, session_id=session_id, message_id=message_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id)
        c.id("message_id", message_id)
    return shapes.message(await messages.get(d.pool, workspace_id, session_id, message_id))


@router.put("/{message_id}")
async def update(workspace_id: str, session_id: str, message_id: str,
                 body: shapes.MessageUpdate, request: Request, d: Deps = Depends(deps)) -> Json:
    await authorize(request, "MessageService/UpdateMessage", pb.UpdateMessageRequest(
        message=resources_pb2.Message(workspace_id=workspace_id, session_id=session_id,
                                      id=message_id)))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("session_id", session_id)
        c.id("message_id", message_id)
        meta = metadata(c, "metadata", body.metadata)
    found = await messages.update(d.pool, workspace_id, session_id, message_id,
                                  {"metadata": meta})
    return shapes.message(found)
