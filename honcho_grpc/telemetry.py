"""OpenTelemetry: one place that configures traces and metrics, and the instruments the
service records.

- Traces: a SERVER span per RPC (`server/tracing.py`, outermost, so it covers auth,
  validation and the final status), the asyncpg statements below it, and the W3C trace
  context of the request stored with every job it enqueues (`queue.trace_context`), so the
  worker's CONSUMER task span continues the request's trace; below the task span, its psycopg
  statements and its reasoning / LLM calls (`llm_span`).
- Metrics: `rpc.server.duration` (ms, by method and status: its count is the call count);
  `honcho.queue.lag` (enqueued to claimed) and `honcho.task.duration` by task type;
  `honcho.queue.depth` (pending jobs by task type, sampled by the worker);
  `honcho.llm.tokens` by task type and direction.
- Exporters by configuration (`TELEMETRY_EXPORTER`): `none` (the default: nothing is
  instrumented, the interceptor passes calls straight through), `console`, or `otlp` (OTLP
  over HTTP to `TELEMETRY_OTLP_ENDPOINT`).

The providers are ours, not OpenTelemetry's process-wide globals (which can be set only once
per process): `install` makes a set of providers the active one and `Telemetry.shutdown`
flushes them and puts the no-op set back, so a test can install in-memory exporters and
leave nothing behind for the next test. Only the context propagator is global (W3C
`traceparent`, OpenTelemetry's default).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from honcho_grpc.settings import TelemetrySettings

if TYPE_CHECKING:  # the SDK is imported only when telemetry is switched on
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor

SCOPE = "honcho_grpc"


class Instruments:
    """Every metric instrument the service records, made once per meter provider."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.rpc_duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="RPC latency by method and status")
        self.queue_lag = meter.create_histogram(
            "honcho.queue.lag", unit="ms", description="enqueued to claimed, per job")
        self.queue_depth = meter.create_gauge(
            "honcho.queue.depth", unit="{job}", description="pending jobs by task type")
        self.task_duration = meter.create_histogram(
            "honcho.task.duration", unit="ms", description="one batch of a task, end to end")
        self.llm_tokens = meter.create_counter(
            "honcho.llm.tokens", unit="{token}",
            description="LLM tokens used by background tasks, by direction")


@dataclass
class Telemetry:
    """A tracer and the instruments of one set of providers; `enabled` is False for the
    no-op set (the default)."""

    enabled: bool
    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    tracer: trace.Tracer = field(init=False)
    instruments: Instruments = field(init=False)
    _closers: list[Callable[[], object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tracer = self.tracer_provider.get_tracer(SCOPE)
        self.instruments = Instruments(self.meter_provider.get_meter(SCOPE))

    def shutdown(self) -> None:
        """Stop instrumenting, export what is left, and make the no-op set active again."""
        global _active
        if _active is self:
            _active = _NOOP
        for close in self._closers:
            close()
        self._closers.clear()


_NOOP = Telemetry(False, trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())
_active = _NOOP


def active() -> Telemetry:
    return _active


# --- set-up ---------------------------------------------------------------------------------

def install(spans: SpanProcessor, reader: MetricReader, *, service: str = "honcho-grpc",
            sample_ratio: float = 1.0) -> Telemetry:
    """Make providers exporting through `spans` and `reader` the active ones and instrument
    asyncpg; `shutdown()` the result to undo all of it."""
    global _active
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if _active.enabled:
        raise RuntimeError("telemetry is already installed; shut it down first")
    resource = Resource.create({"service.name": service})
    # A caller's sampling decision is followed; traces that start here are sampled at ratio.
    tracer_provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    tracer_provider.add_span_processor(spans)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=_StatementTracerProvider(tracer_provider))
    # Undone in this order: no new spans, then the last ones exported.
    _active = Telemetry(True, tracer_provider, meter_provider, [
        instrumentor.uninstrument, tracer_provider.shutdown, meter_provider.shutdown])
    return _active


def configure(settings: TelemetrySettings, role: str) -> Telemetry:
    """Set up the exporters `settings` name for this process (`role`: server or worker)."""
    if settings.exporter == "none":
        return _NOOP
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if settings.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

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


def instrument_psycopg(conn: Any) -> None:
    """Trace the statements of a worker connection (the pool calls this as it opens one)."""
    t = _active
    if t.enabled:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor.instrument_connection(
            conn, tracer_provider=_StatementTracerProvider(t.tracer_provider))


class _StatementTracerProvider(trace.TracerProvider):
    """What the database instrumentations get: their statements are recorded inside a span
    (an RPC, a task) only. Pool resets, the worker's claims and heartbeats and the embedding
    backlog's polling would otherwise each start a one-span trace, thousands an hour."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _StatementTracer(self.provider.get_tracer(*args, **kwargs))


class _StatementTracer(trace.Tracer):
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start_span(self, name: str, context: Context | None = None, *args: Any,
                   **kwargs: Any) -> trace.Span:
        if not _inside_span(context):
            return trace.INVALID_SPAN
        return self.tracer.start_span(name, context, *args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]
            self, name: str, context: Context | None = None, *args: Any,
            **kwargs: Any) -> Iterator[trace.Span]:
        if not _inside_span(context):
            yield trace.INVALID_SPAN
            return
        with self.tracer.start_as_current_span(name, context, *args, **kwargs) as span:
            yield span


def _inside_span(context: Context | None) -> bool:
    return trace.get_current_span(context).get_span_context().is_valid


# --- trace context through the queue --------------------------------------------------------

def current_context() -> dict[str, str] | None:
    """The active span's W3C context (`traceparent`), to store with a job; None outside one
    (and whenever telemetry is off: there is no recording span then)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


@contextlib.contextmanager
def task_span(task_type: str, workspace_id: str, work_unit_key: str,
              contexts: Sequence[dict[str, str] | None],
              enqueued: Sequence[datetime]) -> Iterator[trace.Span]:
    """The worker's span for one batch: a child of the first job's request, linked to the
    others' requests. Records the queue lag of every job and the batch's duration."""
    t = _active
    if not t.enabled:
        yield trace.INVALID_SPAN
        return
    parents = [propagate.extract(c) for c in contexts if c]
    links = [Link(trace.get_current_span(p).get_span_context()) for p in parents[1:]]
    attributes: dict[str, str | int] = {
        "honcho.task_type": task_type, "honcho.workspace_id": workspace_id,
        "honcho.work_unit_key": work_unit_key, "honcho.jobs": len(contexts)}
    now = datetime.now(UTC)
    for created in enqueued:
        t.instruments.queue_lag.record((now - created).total_seconds() * 1000,
                                       {"task_type": task_type})
    started = time.perf_counter()
    with t.tracer.start_as_current_span(
            f"task {task_type}", context=parents[0] if parents else None,
            kind=SpanKind.CONSUMER, links=links, attributes=attributes,
            record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            # The type only: messages may quote user text or a model's answer.
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            t.instruments.task_duration.record((time.perf_counter() - started) * 1000,
                                               {"task_type": task_type})


def record_tokens(task_type: str, input_tokens: int, output_tokens: int) -> None:
    """A task's token bill: the metric, and attributes of the current (task) span."""
    t = _active
    if not t.enabled:
        return
    t.instruments.llm_tokens.add(input_tokens, {"task_type": task_type, "direction": "input"})
    t.instruments.llm_tokens.add(output_tokens, {"task_type": task_type, "direction": "output"})
    span = trace.get_current_span()
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)


def record_queue_depth(pending: dict[str, int]) -> None:
    for task_type, count in pending.items():
        _active.instruments.queue_depth.set(count, {"task_type": task_type})


# --- LLM calls ------------------------------------------------------------------------------

class LLMCall:
    """What an `llm_span` learns while the call runs."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def usage(self, input_tokens: int, output_tokens: int) -> None:
        self.span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        self.span.set_attribute("gen_ai.usage.output_tokens", output_tokens)

    def finished(self, reason: str) -> None:
        if reason:
            self.span.set_attribute("gen_ai.response.finish_reasons", [reason])


@contextlib.contextmanager
def llm_span(name: str, *, system: str, operation: str, model: str = "",
             kind: SpanKind = SpanKind.CLIENT, current: bool = True,
             attributes: Mapping[str, str | int | bool] | None = None) -> Iterator[LLMCall]:
    """A span for one model call (GenAI semantic conventions: `gen_ai.system`,
    `gen_ai.request.model`, `gen_ai.usage.*`). Never the prompt or the answer. A streamed
    call passes `current=False`: its span outlives generator hand-offs, so it must not be
    the context of whatever the consumer does between chunks."""
    attrs: dict[str, str | int | bool] = {
        "gen_ai.system": system, "gen_ai.operation.name": operation, **(attributes or {})}
    if model:
        attrs["gen_ai.request.model"] = model
    span = _active.tracer.start_span(name, kind=kind, attributes=attrs)
    scope: contextlib.AbstractContextManager[Any] = trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ) if current else contextlib.nullcontext()
    try:
        with scope:
            yield LLMCall(span)
    except GeneratorExit:
        raise  # the consumer of a stream stopped reading: not a failure of the call
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()
