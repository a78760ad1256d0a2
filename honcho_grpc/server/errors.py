"""The one place where exceptions become gRPC statuses.

Every non-OK status carries a `google.rpc.Status` with exactly one `ErrorInfo` (reason, domain
`honcho.dev`, metadata), plus `BadRequest` field violations for INVALID_ARGUMENT and `RetryInfo`
for UNAVAILABLE. Unknown exceptions become INTERNAL with a generic message and are logged with
their stack; no exception text or SQL ever reaches the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from honcho_grpc.errors import FieldViolation, HonchoError, InvalidArgument
from honcho_grpc.store.filters import FilterError

log = logging.getLogger(__name__)

DOMAIN = "honcho.dev"

_UNAVAILABLE = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def build_status(code: grpc.StatusCode, message: str, reason: str,
                 metadata: dict[str, str] | None = None,
                 violations: list[FieldViolation] | None = None,
                 retry_after: float | None = None) -> status_pb2.Status:
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN,
                                                 metadata=metadata or {}))]
    if violations:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ])))
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


def status_for(exc: BaseException) -> status_pb2.Status:
    """Map any exception raised by a handler to a status."""
    if isinstance(exc, InvalidArgument):
        return build_status(exc.code, exc.message, exc.reason, exc.metadata, exc.violations)
    if isinstance(exc, HonchoError):
        return build_status(exc.code, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, FilterError):
        return build_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc), "FILTER_INVALID",
                            {"field": exc.path}, [FieldViolation(exc.path, str(exc))])
    if isinstance(exc, NotImplementedError):
        return build_status(grpc.StatusCode.UNIMPLEMENTED, "this method is not implemented yet",
                            "NOT_IMPLEMENTED")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return build_status(grpc.StatusCode.ALREADY_EXISTS, "the resource already exists",
                            "ALREADY_EXISTS")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return build_status(grpc.StatusCode.NOT_FOUND, "a referenced resource does not exist",
                            "PARENT_NOT_FOUND")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return build_status(grpc.StatusCode.ABORTED, "concurrent update; retry", "ABORTED")
    if isinstance(exc, asyncpg.QueryCanceledError | asyncio.TimeoutError):
        return build_status(grpc.StatusCode.DEADLINE_EXCEEDED, "the operation timed out",
                            "DEADLINE_EXCEEDED")
    if isinstance(exc, _UNAVAILABLE):
        log.warning("database unavailable: %s", type(exc).__name__)
        return build_status(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry",
                            "DATABASE_UNAVAILABLE", retry_after=1.0)
    log.error("unhandled error", exc_info=exc)
    return build_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")


async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    status = status_for(exc)
    await context.abort_with_status(rpc_status.to_status(status))


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort(context, exc)

    return handler


def _wrap_stream(behavior: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any,
                      context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            result = behavior(request, context)
            if inspect.isawaitable(result):  # a coroutine handler that only raises or writes
                await result
                return
            async for item in result:
                yield item
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort(context, exc)

    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler so that exceptions become rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_wrap_unary(handler.stream_unary),
                                                        **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(handler.unary_stream),
                                                        **kwargs)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(_wrap_stream(handler.stream_stream),
                                                         **kwargs)
        return handler


__all__ = ["ErrorInterceptor", "abort", "build_status", "status_for"]
