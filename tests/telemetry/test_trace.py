"""Traces and metrics end to end, through in-memory exporters installed for one test at a
time (`telemetry.install`, undone by `shutdown`: nothing leaks into other tests).

- One CreateMessages -> derivation is one trace: the RPC's server span, its asyncpg
  statements, the worker's task span continuing it through the queue, and below the task its
  SQL statements (its reads, and the fenced completion that commits its writes) and
  reasoning steps; no lone statement traces from polling.
- An error's span and metric carry its status; a caller's `traceparent` is continued.
- A remote provider's calls are CLIENT spans with their token usage.
- After shutdown the process is back to no-op telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from honcho_grpc_proto.v1 import message_pb2
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from honcho_grpc import telemetry
from honcho_grpc.db.pool import Database
from honcho_grpc.providers.llm import Message
from tests.conftest import Stubs
from tests.fakes.script import Reply
from tests.providers.conftest import serving
from tests.worker.conftest import eventually, running_worker, worker_settings

CREATE = "/honcho.v1.MessageService/CreateMessages"


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [p for rm in (data.resource_metrics if data else [])
                for sm in rm.scope_metrics for m in sm.metrics if m.name == name
                for p in m.data.data_points]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    installed = telemetry.install(SimpleSpanProcessor(spans), reader)
    try:
        yield Recorded(spans, reader)
    finally:
        installed.shutdown()


def _children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent and s.parent.span_id == parent.context.span_id]


def _statements(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and s.attributes.get("db.system") == "postgresql"]


async def test_create_messages_to_derivation_is_one_trace(
        recorded: Recorded, stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    # Written before the worker starts, so the worker's first depth sample sees it pending.
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="ann", content="I grow tomatoes.")]))

    def task_spans() -> list[ReadableSpan]:
        return [s for s in recorded.finished() if s.name == "task representation"
                and s.attributes and s.attributes.get("honcho.workspace_id") == ws]

    async def derived() -> bool:
        count = await db.pool.fetchval(
            "SELECT count(*) FROM conclusions WHERE workspace_id = $1", ws)
        return bool(count and task_spans())

    async with running_worker(worker_settings(pg_dsn, [ws])):
        await eventually(derived)
    spans = recorded.finished()
    [server] = [s for s in spans if s.name == CREATE.lstrip("/")]
    assert server.kind == SpanKind.SERVER and server.parent is None
    assert server.attributes and server.attributes["rpc.grpc.status_code"] == 0
    assert len(_statements(_children(spans, server))) >= 3, \
        "the write's SQL statements are spans of the RPC"

    [task] = task_spans()
    assert task.context.trace_id == server.context.trace_id, "the worker continues the trace"
    assert task.parent is not None and task.parent.span_id == server.context.span_id
    assert task.kind == SpanKind.CONSUMER
    below_task = _children(spans, task)
    statements = [str((s.attributes or {}).get("db.statement", ""))
                  for s in _statements(below_task)]
    assert any("FROM messages" in q for q in statements), "the task's reads are its children"
    assert any("work_unit_leases" in q and "FOR UPDATE" in q for q in statements) and any(
        q.lstrip().startswith("UPDATE queue") for q in statements), \
        "so is its fenced completion"
    [facts] = [s for s in below_task if s.name == "reason derive_facts"]
    assert facts.attributes and facts.attributes["gen_ai.usage.input_tokens"] > 0
    assert task.attributes and task.attributes["gen_ai.usage.input_tokens"] > 0
    lone = [s.name for s in _statements(list(spans)) if s.parent is None]
    assert lone == [], "statements outside any RPC or task (polling) start no trace"

    [rpc] = [p for p in recorded.points("rpc.server.duration")
             if p.attributes["rpc.method"] == CREATE]
    assert rpc.attributes["rpc.grpc.status_code"] == "OK" and rpc.count == 1
    tokens = {p.attributes["direction"]: p.value for p in recorded.points("honcho.llm.tokens")
              if p.attributes["task_type"] == "representation"}
    assert tokens["input"] > 0 and tokens["output"] > 0
    depth = {p.attributes["task_type"]: p.value for p in recorded.points("honcho.queue.depth")}
    assert depth["representation"] == 1 and depth["summary"] == 0
    assert [p.count for p in recorded.points("honcho.queue.lag")
            if p.attributes["task_type"] == "representation"] == [1]
    assert recorded.points("honcho.task.duration")


async def test_depth_counts_the_pending_backlog(recorded: Recorded, stubs: Stubs, pg_dsn: str,
                                                ws: str) -> None:
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="ann", content=f"I like number {i}.")
            for i in range(3)]))
    # A worker with no handlers claims nothing it can finish; its start-up sample counts
    # what is pending in its workspace.
    settings = worker_settings(pg_dsn, [ws], queue={"concurrency": 0})
    async with running_worker(settings, handlers={}):
        pass
    depth = {p.attributes["task_type"]: p.value for p in recorded.points("honcho.queue.depth")}
    assert depth == {"representation": 3}


async def test_error_status_and_caller_trace(recorded: Recorded, stubs: Stubs, ws: str) -> None:
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.messages.CreateMessages(
            message_pb2.CreateMessagesRequest(workspace_id=ws, session_id="s"),
            metadata=(("traceparent", caller),))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [span] = [s for s in recorded.finished() if s.name == CREATE.lstrip("/")]
    assert span.context.trace_id == 0x0af7651916cd43dd8448eb211c80319c
    assert span.parent is not None and span.parent.span_id == 0xb7ad6b7169203331
    assert span.attributes and span.attributes["rpc.grpc.status_code"] == 3
    assert span.status.status_code == StatusCode.ERROR
    assert span.events == (), "no exception events (their messages may quote user input)"
    codes = [p.attributes["rpc.grpc.status_code"] for p in recorded.points("rpc.server.duration")
             if p.attributes["rpc.method"] == CREATE]
    assert codes == ["INVALID_ARGUMENT"]


async def test_remote_provider_calls_are_client_spans(recorded: Recorded) -> None:
    ask = [Message("system", "Be brief."), Message("user", "What does alice do?")]
    async with serving("openai") as remote:
        remote.fake.push(Reply("Alice is a nurse.", input_tokens=12, output_tokens=5),
                         Reply("She works nights.", input_tokens=3, output_tokens=2))
        provider = remote.provider()
        with telemetry.active().tracer.start_as_current_span("caller"):
            await provider.complete(ask, max_tokens=50)
            streamed = [e async for e in provider.stream(ask, max_tokens=20)]
    assert "".join(e.text for e in streamed) == "She works nights."
    [caller] = [s for s in recorded.finished() if s.name == "caller"]
    chats = [s for s in recorded.finished() if s.name == "chat main-model"]
    assert len(chats) == 2 and all(s.kind == SpanKind.CLIENT for s in chats)
    assert all(s.parent and s.parent.span_id == caller.context.span_id for s in chats)
    usage = [(s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"])
             for s in chats if s.attributes]
    assert sorted(usage) == [(3, 2), (12, 5)]
    for span in chats:
        assert span.attributes and span.attributes["gen_ai.system"] == "openai"
        assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert not any("alice" in str(v).lower() or "nurse" in str(v).lower()
                       for v in span.attributes.values()), "no prompt or answer text"


async def test_shutdown_leaves_no_telemetry_behind(stubs: Stubs, db: Database) -> None:
    async def traceparents(ws: str) -> list[object]:
        await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s",
            messages=[message_pb2.MessageInput(peer_id="ann", content="I swim.")]))
        return [r["trace_context"] for r in await db.pool.fetch(
            "SELECT trace_context FROM queue WHERE workspace_id = $1", ws)]

    assert not telemetry.active().enabled
    spans = InMemorySpanExporter()
    installed = telemetry.install(SimpleSpanProcessor(spans), InMemoryMetricReader())
    on = await traceparents("ws-otel-on-" + _suffix())
    assert on and all(isinstance(t, dict) and "traceparent" in t for t in on)
    installed.shutdown()
    assert not telemetry.active().enabled
    assert not hasattr(asyncpg.connection.Connection.execute, "__wrapped__"), \
        "asyncpg is no longer instrumented"
    off = await traceparents("ws-otel-off-" + _suffix())
    assert off and all(t is None for t in off), "no trace context once telemetry is off"
    again = telemetry.install(SimpleSpanProcessor(InMemorySpanExporter()),
                              InMemoryMetricReader())
    again.shutdown()  # installing anew works: nothing global was taken


def _suffix() -> str:
    import uuid

    return uuid.uuid4().hex[:8]
