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
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from honcho_grpc.db.pool import database_unavailable
from honcho_grpc.errors import FieldViolation, HonchoError, InvalidArgument
from honcho_grpc.providers.llm.base import LLMError, StructuredOutputError
from honcho_grpc.server.interceptors import Arity, Behavior, wrap_handler
from honcho_grpc.store.filters import FilterError

log = logging.getLogger(__name__)

DOMAIN = "honcho.dev"

def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# A status travels in response trailers, and clients refuse trailers over 8 KiB by default (the
# call then fails with a bare RESOURCE_EXHAUSTED). Messages, field paths and metadata can hold
# caller text (map keys, file names), so every part is bounded here, whatever raised it.
MAX_MESSAGE_BYTES = 1024
MAX_VIOLATIONS = 10
MAX_FIELD_CHARS = 120
MAX_TEXT_CHARS = 200
MAX_STATUS_BYTES = 3000  # ~4 KB once base64-encoded in grpc-status-details-bin


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def clip_message(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Clip to `limit` bytes as sent in grpc-message (percent-encoded: 3 bytes per byte of a
    non-ASCII character)."""
    size = 0
    for i, char in enumerate(text):
        size += 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode())
        if size > limit - 9:  # room for the ellipsis
            return text[:i] + "…"
    return text


def build_status(code: grpc.StatusCode, message: str, reason: str,
                 metadata: dict[str, str] | None = None,
                 violations: list[FieldViolation] | None = None,
                 retry_after: float | None = None, *, shrunk: bool = False
                 ) -> status_pb2.Status:
    info_metadata = {clip(k, MAX_FIELD_CHARS): clip(v, MAX_TEXT_CHARS)
                     for k, v in (metadata or {}).items()}
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN,
                                                 metadata=info_metadata))]
    if violations:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=clip(v.field, MAX_FIELD_CHARS),
                description=clip(v.description, MAX_TEXT_CHARS))
            for v in violations[:MAX_VIOLATIONS]
        ])))
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=code.value[0], message=clip_message(message),
                               details=details)
    if status.ByteSize() > MAX_STATUS_BYTES and not shrunk:
        # Wide characters can still make it too big: keep the first violation, a short message.
        return build_status(code, clip_message(message, 300), reason,
                            {k: clip(v, 60) for k, v in (metadata or {}).items()},
                            (violations or [])[:1], retry_after, shrunk=True)
    return status


def status_for(exc: BaseException) -> status_pb2.Status:
    """Map any exception raised by a handler to a status."""
    if isinstance(exc, InvalidArgument):
        return build_status(exc.code, exc.message, exc.reason, exc.metadata, exc.violations)
    if isinstance(exc, HonchoError):
        return build_status(exc.code, exc.message, exc.reason, exc.metadata,
                            retry_after=exc.retry_after)
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
    if database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return build_status(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry",
                            "DATABASE_UNAVAILABLE", retry_after=1.0)
    if isinstance(exc, LLMError):
        return _llm_status(exc)
    log.error("unhandled error", exc_info=exc)
    return build_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")


def _llm_status(exc: LLMError) -> status_pb2.Status:
    """The language model behind the service failed (after our retries): an upstream
    dependency, so UNAVAILABLE, as a proxy would say of a failing backend, never the
    caller's fault. The provider's own text is logged, not sent: it may quote the prompt."""
    log.warning("LLM provider failed: %s", exc)
    metadata = {"retryable": str(exc.retryable).lower()}
    if exc.status_code is not None:
        metadata["provider_status"] = str(exc.status_code)
    if isinstance(exc, StructuredOutputError):
        return build_status(grpc.StatusCode.UNAVAILABLE,
                            "the language model's answer did not match the response format",
                            "LLM_INVALID_OUTPUT", metadata)
    return build_status(grpc.StatusCode.UNAVAILABLE, "the language model provider failed",
                        "LLM_UNAVAILABLE", metadata,
                        retry_after=2.0 if exc.retryable else None)


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


def _wrap_stream(behavior: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    # Responses are written here, not yielded to grpc: a client's cancel then raises inside
    # this coroutine (at the write) and the handler's generator is closed at once, in this
    # task. Yielded, the generator would be left suspended and closed later by the garbage
    # collector from another task: provider streams kept running meanwhile, and context
    # managers (spans) exited in the wrong context.
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        try:
            result = behavior(request, context)
            if inspect.isawaitable(result):  # a coroutine handler that only raises or writes
                await result
                return
            try:
                async for item in result:
                    await context.write(item)
            finally:
                await result.aclose()
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort(context, exc)

    return handler


def _wrap(behavior: Behavior, arity: Arity) -> Behavior:
    return _wrap_stream(behavior) if arity.response_stream else _wrap_unary(behavior)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler so that exceptions become rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        return None if handler is None else wrap_handler(handler, _wrap)


__all__ = ["ErrorInterceptor", "abort", "build_status", "clip", "status_for"]
