"""The server's tracing interceptor: a SERVER span and the `rpc.server.duration` metric per
RPC, recorded through the active telemetry (`honcho_grpc.telemetry`). It lives with the other
interceptors, not in telemetry (which the worker uses too), so that the worker never loads
gRPC server plumbing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from honcho_grpc import telemetry
from honcho_grpc.server.interceptors import Context, within, wrap_handler


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span per RPC (continuing a caller's `traceparent` metadata) and the RPC
    duration metric, both with the final status code. Register it first (outermost). With
    telemetry off, calls pass straight through.

    Ours rather than opentelemetry-instrumentation-grpc's aio interceptor (0.66b1): that one
    learns the status only from `context.abort`/`set_code`, so every error we send with
    `abort_with_status` is recorded as OK, and it records no metrics."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        t = telemetry.active()
        if handler is None or not t.enabled:
            return handler
        method = handler_call_details.method
        metadata = {k: v for k, v in (handler_call_details.invocation_metadata or ())
                    if isinstance(v, str)}
        return wrap_handler(handler, within(
            lambda context: _rpc_span(t, method, metadata, context)))


@contextlib.contextmanager
def _rpc_span(t: telemetry.Telemetry, method: str, metadata: dict[str, str],
              context: Context) -> Iterator[None]:
    service, _, name = method.lstrip("/").partition("/")
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    with t.tracer.start_as_current_span(
            method.lstrip("/"), context=propagate.extract(metadata), kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False, set_status_on_exception=False) as span:
        try:
            yield
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            code = _code(context) or code
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code != grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            t.instruments.rpc_duration.record(
                (time.perf_counter() - started) * 1000,
                {"rpc.method": method, "rpc.grpc.status_code": code.name})


def _code(context: Context) -> grpc.StatusCode | None:
    """The status the handler (or an inner interceptor) set, if any."""
    with contextlib.suppress(Exception):
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code
        if isinstance(code, int):
            return next((c for c in grpc.StatusCode if c.value[0] == code), None)
    return None


__all__ = ["TracingInterceptor"]
