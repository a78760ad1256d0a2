"""Exceptions to Honcho's error bodies: `{"detail": "text"}` with Honcho's status codes. The
gRPC face's mapping (server/errors.status_for) decides the code and the caller-safe message;
here the gRPC code becomes the HTTP status Honcho answers with."""

from __future__ import annotations

import logging
import math
from typing import Any

import asyncpg
import grpc
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from honcho_grpc.errors import HonchoError
from honcho_grpc.providers.llm.base import LLMError
from honcho_grpc.server.errors import status_for
from honcho_grpc.store.filters import FilterError

log = logging.getLogger(__name__)

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.OUT_OF_RANGE: 422,
}
CODES = {code.value[0]: code for code in grpc.StatusCode}
HANDLED: tuple[type[Exception], ...] = (HonchoError, FilterError, LLMError, asyncpg.PostgresError,
                                        OSError, TimeoutError)
# Reasons whose Honcho status differs from the gRPC code's usual one. Honcho answers every
# refusal of a token with 401 (AuthenticationException: "JWT not permissioned for this
# resource", "Resource requires admin privileges"), so the policy's PERMISSION_DENIED reasons
# (server/auth.py) are 401 here, as its SDKs expect (AuthenticationError).
BY_REASON = {"FILE_TOO_LARGE": 413, "UNSUPPORTED_CONTENT_TYPE": 415, "AUTH_DISABLED": 405,
             "TOKEN_SCOPE_MISMATCH": 401, "ADMIN_REQUIRED": 401, "NO_POLICY": 401,
             "SESSION_MEMBERSHIP_REQUIRED": 401}


def status_and_detail(exc: BaseException) -> tuple[int, str]:
    status = status_for(exc)
    code = CODES.get(status.code, grpc.StatusCode.INTERNAL)
    reason = exc.reason if isinstance(exc, HonchoError) else ""
    return BY_REASON.get(reason, HTTP_STATUS.get(code, 500)), status.message


async def handle(request: Request, exc: Exception) -> JSONResponse:
    status, detail = status_and_detail(exc)
    if status >= 500:
        log.warning("%s %s answered %d: %s", request.method, request.url.path, status, detail)
    return JSONResponse({"detail": detail}, status_code=status)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 `{"detail": [errors]}`, which echoes what it refused. An echo JSON cannot
    carry (a non-finite number, a lone surrogate: in a query value or form field, say) is
    written printable rather than failing the answer with a 500."""
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    try:
        return JSONResponse({"detail": errors}, status_code=422)
    except (ValueError, UnicodeEncodeError):
        return JSONResponse({"detail": _printable(errors)}, status_code=422)


def _printable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    return value
