"""KeyService.CreateKey: scoped JWTs. The auth interceptor lets only admin tokens in; with
auth off there is nothing to sign with or check, so the call fails with FAILED_PRECONDITION."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from honcho_grpc_proto.v1 import key_pb2 as pb
from honcho_grpc_proto.v1 import key_pb2_grpc as rpc

from honcho_grpc.errors import failed_precondition
from honcho_grpc.server.auth import Claims, mint_token, scope_problems
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, checking

Ctx = grpc.aio.ServicerContext[Any, Any]
FIELDS = {"workspace": "workspace_id", "peer": "peer_id", "session": "session_id",
          "admin": "admin"}


def check_scope(c: Checker, claims: Claims) -> None:
    """Field violations (named after CreateKeyRequest fields) for an unusable scope."""
    if claims.peer and claims.session:
        c.fail("session_id", "give peer_id or session_id, not both")
    for claim, problem in scope_problems(claims):
        c.fail(FIELDS[claim], problem)


class KeyServicer(rpc.KeyServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def CreateKey(self, request: pb.CreateKeyRequest, context: Ctx) -> pb.CreateKeyResponse:
        auth = self.deps.settings.auth
        if not auth.use_auth:
            raise failed_precondition(
                "auth is off: keys can be issued only when the server runs with "
                "AUTH_USE_AUTH=true and AUTH_JWT_SECRET set", "AUTH_DISABLED")
        claims = Claims(admin=request.admin, workspace=request.workspace_id,
                        peer=request.peer_id, session=request.session_id)
        expires: datetime | None = None
        with checking() as c:
            check_scope(c, claims)
            if request.HasField("expire_time"):
                try:
                    expires = request.expire_time.ToDatetime(tzinfo=UTC)
                except (ValueError, OverflowError):
                    c.fail("expire_time", "is not a valid timestamp")
                if expires is not None and expires <= datetime.now(UTC):
                    c.fail("expire_time", "must be in the future")
        secret = auth.jwt_secret.get_secret_value()
        return pb.CreateKeyResponse(key=mint_token(secret, claims, expires))
