"""OpenTelemetry: one place that configures traces and metrics, and the few instruments the
service records.

- Traces: a server span per RPC (TracingInterceptor, outermost, so it covers auth, validation
  and the final status), asyncpg query spans below it (the asyncpg instrumentation), and the
  W3C trace context of the request stored with every job it enqueues (`queue.trace_context`),
  so the worker's task span continues the request's trace.
- Metrics: RPC duration by method and status; queue lag (enqueued to started) and task
  duration by task type; LLM tokens by task type and direction.
- Exporters by configuration (`TELEMETRY_EXPORTER`): `none` (the default: the API's no-op
  providers, a few microseconds per RPC), `console`, or `otlp` (OTLP over HTTP to
  `TELEMETRY_OTLP_ENDPOINT`).

Instruments are fetched from the global providers when used, so tests can install in-memory
exporters once (`install`) and see everything the server and the worker record.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from honcho_grpc.settings import TelemetrySettings

SCOPE = "honcho_grpc"


def _tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE)


def _meter() -> metrics.Meter:
    return metrics.get_meter(SCOPE)


# --- set-up ---------------------------------------------------------------------------------

def install(spans: SpanProcessor, reader: MetricReader, *, service: str = "honcho-grpc",
            sample_ratio: float = 1.0) -> Callable[[], None]:
    """Make these the process's providers and instrument asyncpg; returns a flush-and-close.
    OpenTelemetry allows setting the global providers once per process."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    resource = Resource.create({"service.name": service})
    tracer_provider = TracerProvider(resource=resource,
                                     sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    tracer_provider.add_span_processor(spans)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return shutdown


def configure(settings: TelemetrySettings, role: str) -> Callable[[], None]:
    """Set up the exporters `settings` name for this process (`role`: server or worker)."""
    if settings.exporter == "none":
        return lambda: None
    if settings.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        span_exporter: Any = ConsoleSpanExporter()
        metric_exporter: Any = ConsoleMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = settings.otlp_endpoint.rstrip("/")
        span_exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces")
        metric_exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics")
    reader = PeriodicExportingMetricReader(
        metric_exporter, export_interval_millis=int(settings.metric_interval_seconds * 1000))
    return install(BatchSpanProcessor(span_exporter), reader,
                   service=f"{settings.service_name}-{role}", sample_ratio=settings.sample_ratio)


# --- trace context through the queue --------------------------------------------------------

def current_context() -> dict[str, str] | None:
    """The active span's W3C context (`traceparent`), to store with a job; None outside one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


@contextlib.contextmanager
def task_span(task_type: str, workspace_id: str, work_unit_key: str,
              contexts: list[dict[str, str] | None],
              enqueued: list[datetime]) -> Iterator[trace.Span]:
    """The worker's span for one batch: a child of the first job's request, linked to the
    others'. Records the queue lag of every job and the batch's duration."""
    parents = [propagate.extract(c) for c in contexts if c]
    links = [Link(trace.get_current_span(p).get_span_context()) for p in parents[1:]]
    attributes: dict[str, str | int] = {
        "honcho.task_type": task_type, "honcho.workspace_id": workspace_id,
        "honcho.work_unit_key": work_unit_key, "honcho.jobs": len(contexts)}
    now = datetime.now(UTC)
    lag = _meter().create_histogram("honcho.queue.lag", unit="ms",
                                    description="enqueued to started, per job")
    for created in enqueued:
        lag.record((now - created).total_seconds() * 1000, {"task_type": task_type})
    started = time.perf_counter()
    with _tracer().start_as_current_span(
            f"task {task_type}", context=parents[0] if parents else None, kind=SpanKind.CONSUMER,
            links=links, attributes=attributes) as span:
        yield span
    _meter().create_histogram("honcho.task.duration", unit="ms").record(
        (time.perf_counter() - started) * 1000, {"task_type": task_type})


def record_tokens(task_type: str, input_tokens: int, output_tokens: int) -> None:
    counter = _meter().create_counter("honcho.llm.tokens", unit="{token}",
                                      description="LLM tokens used by background tasks")
    counter.add(input_tokens, {"task_type": task_type, "direction": "input"})
    counter.add(output_tokens, {"task_type": task_type, "direction": "output"})


# --- the server interceptor -----------------------------------------------------------------

class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span per RPC (continuing a caller's `traceparent` metadata) and the RPC
    duration metric, both with the final status code. Register it first (outermost)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        metadata = {k: v for k, v in (handler_call_details.invocation_metadata or ())
                    if isinstance(v, str)}
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.unary_unary or handler.stream_unary:
            behavior = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                with _rpc_span(method, metadata, context):
                    return await behavior(request, context)

            factory = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                       else grpc.stream_unary_rpc_method_handler)
            return factory(unary, **kwargs)
        behavior = handler.unary_stream or handler.stream_stream

        async def stream(request: Any,
                         context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            with _rpc_span(method, metadata, context):
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    await result
                    return
                async for item in result:
                    yield item

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                   else grpc.stream_stream_rpc_method_handler)
        return factory(stream, **kwargs)


@contextlib.contextmanager
def _rpc_span(method: str, metadata: dict[str, str],
              context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[None]:
    service, _, name = method.lstrip("/").partition("/")
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    with _tracer().start_as_current_span(
            method.lstrip("/"), context=propagate.extract(metadata), kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False, set_status_on_exception=False) as span:
        try:
            yield
        except BaseException:
            code = _code(context) or grpc.StatusCode.UNKNOWN
            raise
        finally:
            code = _code(context) or code
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code != grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            _meter().create_histogram("rpc.server.duration", unit="ms").record(
                (time.perf_counter() - started) * 1000,
                {"rpc.method": method, "rpc.grpc.status_code": code.name})


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    with contextlib.suppress(Exception):
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code
        if isinstance(code, int):
            return next((c for c in grpc.StatusCode if c.value[0] == code), None)
    return None
