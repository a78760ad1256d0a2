"""KeyService.CreateKey: scoped JWTs, issued by domain/keys.py. The auth interceptor lets only
admin tokens in; with auth off there is nothing to sign with or check, so the call fails with
FAILED_PRECONDITION."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from honcho_grpc_proto.v1 import key_pb2 as pb
from honcho_grpc_proto.v1 import key_pb2_grpc as rpc

from honcho_grpc.domain import keys
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking

Ctx = grpc.aio.ServicerContext[Any, Any]


class KeyServicer(rpc.KeyServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def CreateKey(self, request: pb.CreateKeyRequest, context: Ctx) -> pb.CreateKeyResponse:
        expires: datetime | None = None
        if request.HasField("expire_time"):
            with checking() as c:
                try:
                    expires = request.expire_time.ToDatetime(tzinfo=UTC)
                except (ValueError, OverflowError):
                    c.fail("expire_time", "is not a valid timestamp")
        claims = keys.Claims(admin=request.admin, workspace=request.workspace_id,
                             peer=request.peer_id, session=request.session_id)
        return pb.CreateKeyResponse(key=keys.issue(self.deps.settings.auth, claims, expires))
