"""Behaviour both real providers share, each through its official SDK against a local server
speaking its wire protocol: answers, streaming (tool calls included), usage, retries,
fallback, timeouts, and a closed or cancelled stream dropping the connection at once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from honcho_grpc.providers.llm import (
    LLMError,
    Message,
    StreamEvent,
    StructuredOutputError,
    ToolCall,
    ToolSpec,
)
from honcho_grpc.providers.llm.base import MAX_CHARS_PER_TOKEN
from tests.fakes.script import Failure, Raw, Reply, pieces
from tests.providers.conftest import Remote, serving

ASK = [Message("system", "Be brief."), Message("user", "What does alice do?")]


async def test_complete_returns_text_usage_and_finish(remote: Remote) -> None:
    remote.fake.push(Reply("Alice is a nurse.", input_tokens=12, output_tokens=5))
    done = await remote.provider().complete(ASK, max_tokens=50)
    assert done.text == "Alice is a nurse."
    assert (done.usage.input_tokens, done.usage.output_tokens) == (12, 5)
    assert done.finish_reason == "stop" and done.tool_calls == []
    assert remote.fake.bodies[0]["model"] == "main-model"


async def test_length_finish_is_normalised(remote: Remote) -> None:
    stop = "length" if remote.kind == "openai" else "max_tokens"
    remote.fake.push(Reply("Alice is a", finish_reason=stop))
    done = await remote.provider().complete(ASK, max_tokens=3)
    assert done.finish_reason == "length"


async def test_dict_messages_are_accepted(remote: Remote) -> None:
    done = await remote.provider().complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=10)
    assert done.text == "Alice is a nurse."


async def test_stream_yields_deltas_in_order_then_usage(remote: Remote) -> None:
    chunks = ["Al", "ice ", "is ", "a ", "nurse."]
    remote.fake.push(Reply(chunks=chunks, input_tokens=21, output_tokens=6))
    events = [e async for e in remote.provider().stream(ASK, max_tokens=50)]
    assert [e.text for e in events[:-1]] == chunks
    last = events[-1]
    assert last.text == "" and last.usage is not None and last.finish_reason == "stop"
    assert (last.usage.input_tokens, last.usage.output_tokens) == (21, 6)
    assert remote.fake.bodies[0]["stream"] is True


async def test_stream_deltas_arrive_as_the_provider_sends_them(remote: Remote) -> None:
    async with serving(remote.kind, chunk_delay=0.15) as slow:
        slow.fake.push(Reply(chunks=["one ", "two ", "three"]))
        arrivals: list[float] = []
        async for event in slow.provider().stream(ASK, max_tokens=9):
            if event.text:
                arrivals.append(time.monotonic())
    # Not buffered until the end: the deltas are spread over the server's pacing.
    assert len(arrivals) == 3 and arrivals[-1] - arrivals[0] > 0.2


SEARCH = ToolSpec("search_memory", "Search what is known.",
                  {"type": "object", "properties": {"query": {"type": "string"}}})


def offered(remote: Remote, body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] if remote.kind == "openai" else t["name"]
            for t in body.get("tools") or []]


async def test_stream_with_tools_yields_text_then_the_assembled_calls(remote: Remote) -> None:
    first = {"query": "alice's job, employer and the hospital's name", "limit": 5}
    second = {"query": "night shifts"}
    # The fakes stream arguments in 8-character pieces: several chunks per call.
    assert len(pieces(json.dumps(first))) > 3 and len(pieces(json.dumps(second))) > 1
    remote.fake.push(Reply("Let me look.", tool_calls=[
        ("call_1", "search_memory", first), ("call_2", "search_memory", second)],
        input_tokens=30, output_tokens=12))
    events = [e async for e in remote.provider().stream(ASK, max_tokens=50, tools=[SEARCH])]

    assert [e.text for e in events[:-1]] == ["Let ", "me ", "look."]
    assert all(e.tool_calls == [] for e in events[:-1])
    last = events[-1]
    assert last.tool_calls == [ToolCall("call_1", "search_memory", first),
                               ToolCall("call_2", "search_memory", second)]
    assert last.finish_reason == "tool_calls" and last.usage is not None
    assert (last.usage.input_tokens, last.usage.output_tokens) == (30, 12)
    body = remote.fake.bodies[0]
    assert body["stream"] is True and offered(remote, body) == ["search_memory"]


async def test_stream_without_tools_offers_none(remote: Remote) -> None:
    events = [e async for e in remote.provider().stream(ASK, max_tokens=50)]
    assert events[-1].tool_calls == [] and "tools" not in remote.fake.bodies[0]


async def test_streamed_tool_arguments_that_are_not_an_object_raise(remote: Remote) -> None:
    garbled: Any = "not an object"
    remote.fake.push(Reply("Hm.", tool_calls=[("call_1", "search_memory", garbled)]))
    texts: list[str] = []
    with pytest.raises(StructuredOutputError, match="tool call arguments"):
        async for event in remote.provider().stream(ASK, max_tokens=50, tools=[SEARCH]):
            texts.append(event.text)
    assert texts == ["Hm."]  # the text came as it arrived; the calls fail at the end


async def test_retries_then_succeeds(remote: Remote) -> None:
    remote.fake.push(Failure(500), Failure(503), Reply("ok"))
    done = await remote.provider(max_retries=2).complete(ASK, max_tokens=5)
    assert done.text == "ok"
    assert [b["model"] for b in remote.fake.bodies] == ["main-model"] * 3


async def test_rate_limit_is_retried(remote: Remote) -> None:
    remote.fake.push(Failure(429, headers={"retry-after": "0"}), Reply("ok"))
    done = await remote.provider(max_retries=1).complete(ASK, max_tokens=5)
    assert done.text == "ok" and len(remote.fake.requests) == 2


async def test_fallback_model_takes_the_last_attempt(remote: Remote) -> None:
    remote.fake.push(Failure(500), Failure(500), Reply("from the fallback"))
    provider = remote.provider(max_retries=2, fallback_model="backup-model")
    done = await provider.complete(ASK, max_tokens=5)
    assert done.text == "from the fallback"
    assert [b["model"] for b in remote.fake.bodies] == ["main-model", "main-model",
                                                        "backup-model"]


async def test_exhausted_retries_raise_llm_error(remote: Remote) -> None:
    remote.fake.push(Failure(503), Failure(503))
    with pytest.raises(LLMError) as caught:
        await remote.provider(max_retries=1).complete(ASK, max_tokens=5)
    assert caught.value.status_code == 503 and caught.value.retryable
    assert len(remote.fake.requests) == 2


async def test_client_errors_are_not_retried(remote: Remote) -> None:
    remote.fake.push(Failure(400, "bad request"))
    with pytest.raises(LLMError) as caught:
        await remote.provider(max_retries=3).complete(ASK, max_tokens=5)
    assert caught.value.status_code == 400 and not caught.value.retryable
    assert len(remote.fake.requests) == 1


async def test_per_call_timeout(remote: Remote) -> None:
    remote.fake.push(Reply("late", delay=2.0))
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        await remote.provider(timeout_seconds=30).complete(ASK, max_tokens=5, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert caught.value.retryable and caught.value.status_code is None


async def test_timeout_is_retried_on_the_fallback(remote: Remote) -> None:
    remote.fake.push(Reply("late", delay=2.0), Reply("in time"))
    provider = remote.provider(timeout_seconds=0.3, max_retries=1, fallback_model="backup")
    done = await provider.complete(ASK, max_tokens=5)
    assert done.text == "in time"
    assert [b["model"] for b in remote.fake.bodies] == ["main-model", "backup"]


async def test_stream_opening_is_retried(remote: Remote) -> None:
    remote.fake.push(Failure(500), Reply(chunks=["fine"]))
    stream = remote.provider(max_retries=1).stream(ASK, max_tokens=5)
    assert [e.text async for e in stream if e.text] == ["fine"]
    assert len(remote.fake.requests) == 2


LONG = Reply(chunks=[f"w{i} " for i in range(200)])  # 10 s at the pacing below


async def test_closing_a_stream_drops_the_connection(remote: Remote) -> None:
    async with serving(remote.kind, chunk_delay=0.05) as slow:
        slow.fake.push(LONG)
        stream = slow.provider().stream(ASK, max_tokens=500)
        first = await anext(stream)
        assert first.text == "w0 "
        await stream.aclose()
        await asyncio.wait_for(slow.fake.hung_up.wait(), timeout=2)
        assert slow.fake.streams_completed == 0


async def test_cancelling_the_consumer_drops_the_connection(remote: Remote) -> None:
    async with serving(remote.kind, chunk_delay=0.05) as slow:
        slow.fake.push(LONG)
        received: list[StreamEvent] = []
        started = asyncio.Event()

        async def consume() -> None:
            async for event in slow.provider().stream(ASK, max_tokens=9):
                received.append(event)
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(slow.fake.hung_up.wait(), timeout=2)
        assert slow.fake.streams_completed == 0 and len(received) < 50


# Replies of the wrong shape, per protocol: the SDKs build reply objects without validating
# them, so each would surface as a TypeError or AttributeError where the reply is read.
WRONG_SHAPES = {
    "openai": [{"choices": [{"message": None}]}, {"choices": "x"}, {"choices": [5]},
               {"choices": [{"message": {"content": 123}}]}],
    "anthropic": [{"content": None, "usage": {}}, {"content": [{"type": "text"}]},
                  {"content": "x", "stop_reason": 5}],
}
BROKEN_STREAMS = {
    "openai": [[b'data: {"choices": [{"delta": 5}], "usage": null}\n\n'],
               [b"data: {not json\n\n"]],
    "anthropic": [[b'event: message_start\ndata: {"type": "message_start", '
                   b'"message": null}\n\n'],
                  [b"event: content_block_delta\ndata: {not json\n\n"]],
}


async def test_replies_of_the_wrong_shape_are_the_providers_failure(remote: Remote) -> None:
    """Never a TypeError (INTERNAL): an LLMError the caller may retry, for a plain call and a
    stream alike."""
    provider = remote.provider()
    for shape in WRONG_SHAPES[remote.kind]:
        remote.fake.push(Raw(json=shape))
        with pytest.raises(LLMError):
            await provider.complete(ASK, max_tokens=50)
    for events in BROKEN_STREAMS[remote.kind]:
        remote.fake.push(Raw(events=events))
        with pytest.raises(LLMError):
            _ = [e async for e in provider.stream(ASK, max_tokens=50)]


async def test_a_stream_trickling_bytes_is_cut_at_the_timeout(remote: Remote) -> None:
    """A byte every 0.1 s keeps every socket read short of the SDK's timeout, but no event
    ever completes: the wait for each event is bounded, and it is the provider's failure."""
    remote.fake.chunk_delay = 0.1
    remote.fake.push(Raw(events=[b"data: {"] + [b" "] * 100))
    started = time.monotonic()
    with pytest.raises(LLMError, match="in time") as caught:
        _ = [e async for e in remote.provider(timeout_seconds=1.0).stream(ASK, max_tokens=50)]
    assert caught.value.retryable
    assert time.monotonic() - started < 5


async def test_a_model_that_ignores_max_tokens_is_cut_off(remote: Remote) -> None:
    remote.fake.push(Reply(chunks=["more "] * 2000))  # the fake ignores max_tokens
    events = [e async for e in remote.provider().stream(ASK, max_tokens=5)]
    text = "".join(e.text for e in events)
    assert 0 < len(text) <= 5 * MAX_CHARS_PER_TOKEN
    assert events[-1].finish_reason == "length"
    remote.fake.push(Reply("x" * 10_000))
    done = await remote.provider().complete(ASK, max_tokens=5)
    assert len(done.text) == 5 * MAX_CHARS_PER_TOKEN and done.finish_reason == "length"


async def test_a_stream_that_says_nothing_is_no_answer(remote: Remote) -> None:
    """An empty body, or one that is not SSE at all, is not an empty answer."""
    for events in ([], [b'{"choices": [{"message": {"content": "hi"']):
        remote.fake.push(Raw(events=events))
        with pytest.raises(LLMError, match="without an answer"):
            _ = [e async for e in remote.provider().stream(ASK, max_tokens=50)]


async def test_negative_usage_bills_nothing(remote: Remote) -> None:
    remote.fake.push(Reply("Alice is a nurse.", input_tokens=-5, output_tokens=-99))
    done = await remote.provider().complete(ASK, max_tokens=50)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (0, 0)
    remote.fake.push(Reply("Alice is a nurse.", input_tokens=-5, output_tokens=-99))
    events = [e async for e in remote.provider().stream(ASK, max_tokens=50)]
    assert events[-1].usage is not None
    assert (events[-1].usage.input_tokens, events[-1].usage.output_tokens) == (0, 0)


@pytest.mark.parametrize(("kind", "retryable"), [("overloaded_error", True),
                                                 ("invalid_request_error", False)])
async def test_an_error_event_inside_a_stream_is_judged_by_its_type(
        anthropic_remote: Remote, kind: str, retryable: bool) -> None:
    """Anthropic sends a mid-stream failure as an `error` event in the stream's 200."""
    anthropic_remote.fake.push(Raw(events=[
        b'event: error\ndata: {"type": "error", "error": {"type": "%s", '
        b'"message": "no"}}\n\n' % kind.encode()]))
    with pytest.raises(LLMError) as caught:
        _ = [e async for e in anthropic_remote.provider().stream(ASK, max_tokens=50)]
    assert caught.value.retryable is retryable
