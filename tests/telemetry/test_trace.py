"""One CreateMessages -> derivation trace, end to end: the server span of the RPC, the asyncpg
spans below it, and the worker's task span continuing the same trace through the queue; and
the metrics recorded on the way. In-memory exporters installed as the process's providers
(once: OpenTelemetry does not allow replacing them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from honcho_grpc import telemetry
from honcho_grpc.db.pool import Database
from honcho_grpc.gen.honcho.v1 import message_pb2
from tests.conftest import Stubs
from tests.worker.conftest import eventually, running_worker, worker_settings


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry.install(SimpleSpanProcessor(spans), reader)
    yield spans, reader
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    spans.shutdown()  # later tests' spans are dropped, not kept in memory


def _metric_names(reader: InMemoryMetricReader) -> set[str]:
    data = reader.get_metrics_data()
    return {m.name for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics for m in sm.metrics}


async def test_create_messages_to_derivation_is_one_trace(
        recorded: tuple[InMemorySpanExporter, InMemoryMetricReader], stubs: Stubs,
        db: Database, pg_dsn: str, ws: str) -> None:
    spans, reader = recorded
    spans.clear()
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s", messages=[
                message_pb2.MessageInput(peer_id="ann", content="I grow tomatoes.")]))

        async def derived() -> bool:
            return bool(await db.pool.fetchval(
                "SELECT count(*) FROM conclusions WHERE workspace_id = $1", ws))

        await eventually(derived)

        def task_spans() -> list[ReadableSpan]:
            return [s for s in spans.get_finished_spans()
                    if s.name == "task representation"
                    and s.attributes and s.attributes.get("honcho.workspace_id") == ws]

        async def task_done() -> bool:
            return bool(task_spans())

        await eventually(task_done)
    finished = spans.get_finished_spans()
    rpc = [s for s in finished if s.name == "honcho.v1.MessageService/CreateMessages"]
    assert len(rpc) == 1 and rpc[0].kind == SpanKind.SERVER
    server = rpc[0]
    assert server.attributes and server.attributes["rpc.grpc.status_code"] == 0
    trace_id = server.context.trace_id
    queries = [s for s in finished if s.parent and s.parent.span_id == server.context.span_id
               and s.attributes and s.attributes.get("db.system") == "postgresql"]
    assert len(queries) >= 3, "the write's SQL statements are spans of the RPC"
    task = task_spans()[0]
    assert task.context.trace_id == trace_id, "the worker continues the request's trace"
    assert task.parent is not None and task.parent.span_id == server.context.span_id
    assert task.kind == SpanKind.CONSUMER
    assert {"rpc.server.duration", "honcho.queue.lag", "honcho.task.duration",
            "honcho.llm.tokens"} <= _metric_names(reader)
