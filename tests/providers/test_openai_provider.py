"""OpenAI-specific wire format through the official SDK: messages and tool turns as the chat
completions API wants them, tool calls back, and both structured-output modes."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from honcho_grpc.providers.llm import Message, StructuredOutputError, ToolCall, ToolSpec
from tests.fakes.script import Reply
from tests.providers.conftest import Remote

SEARCH = ToolSpec("search_memory", "Search what is known.",
                  {"type": "object", "properties": {"query": {"type": "string"}},
                   "required": ["query"]})
PERSON = {"type": "object", "title": "person",
          "properties": {"name": {"type": "string"}, "likes": {"type": "array",
                                                               "items": {"type": "string"}}},
          "required": ["name", "likes"]}


async def test_messages_and_max_tokens_on_the_wire(openai_remote: Remote) -> None:
    await openai_remote.provider().complete(
        [Message("system", "Be brief."), Message("user", "Hi")], max_tokens=42)
    body = openai_remote.fake.bodies[0]
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi"}]
    # A custom base URL means a compatible server, which knows `max_tokens`.
    assert body["max_tokens"] == 42 and "max_completion_tokens" not in body


async def test_tool_calls_round_trip(openai_remote: Remote) -> None:
    fake = openai_remote.fake
    fake.push(Reply("", tool_calls=[("call_1", "search_memory", {"query": "job"})]),
              Reply("Alice is a nurse."))
    provider = openai_remote.provider()
    asked = [Message("user", "What does alice do?")]
    first = await provider.complete(asked, max_tokens=50, tools=[SEARCH])
    assert first.tool_calls == [ToolCall("call_1", "search_memory", {"query": "job"})]
    assert first.finish_reason == "tool_calls" and first.text == ""
    assert fake.bodies[0]["tools"] == [{"type": "function", "function": {
        "name": "search_memory", "description": "Search what is known.",
        "parameters": SEARCH.parameters}}]

    turns = [*asked, Message("assistant", tool_calls=tuple(first.tool_calls)),
             Message("tool", "alice works as a nurse", tool_call_id="call_1")]
    second = await provider.complete(turns, max_tokens=50, tools=[SEARCH])
    assert second.text == "Alice is a nurse."
    assert fake.bodies[1]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "search_memory", "arguments": '{"query": "job"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "alice works as a nurse"}]


async def test_unparseable_arguments_fail_alike_whole_or_streamed(openai_remote: Remote) -> None:
    # Only this wire carries arguments as a JSON string, which can fail to parse.
    garbled: Any = "not an object"
    openai_remote.fake.push(*[Reply("", tool_calls=[("c1", "search_memory", garbled)])] * 2)
    provider = openai_remote.provider()
    with pytest.raises(StructuredOutputError, match="tool call arguments") as whole:
        await provider.complete([Message("user", "Hi")], max_tokens=50, tools=[SEARCH])
    with pytest.raises(StructuredOutputError, match="tool call arguments") as streamed:
        _ = [e async for e in provider.stream([Message("user", "Hi")], max_tokens=50,
                                              tools=[SEARCH])]
    assert whole.value.text == streamed.value.text == '"not an object"'


async def test_structured_json_schema_mode(openai_remote: Remote) -> None:
    openai_remote.fake.push(Reply('{"name": "alice", "likes": ["hiking"]}'))
    value = await openai_remote.provider().structured([Message("user", "Who?")], PERSON,
                                                      max_tokens=50)
    assert value == {"name": "alice", "likes": ["hiking"]}
    assert openai_remote.fake.bodies[0]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                               "strict": False}}


async def test_structured_json_object_mode_repairs_sloppy_json(openai_remote: Remote) -> None:
    sloppy = "Sure! Here it is:\n```json\n{'name': 'alice', 'likes': ['hiking',],}\n```\nBye"
    openai_remote.fake.push(Reply(sloppy))
    provider = openai_remote.provider(structured_output_mode="json_object")
    value = await provider.structured([Message("system", "You extract."),
                                       Message("user", "Who?")], PERSON, max_tokens=50)
    assert value == {"name": "alice", "likes": ["hiking"]}
    body = openai_remote.fake.bodies[0]
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You extract.")
    assert json.dumps(PERSON) in system["content"]
    assert len([m for m in body["messages"] if m["role"] == "system"]) == 1


async def test_structured_output_that_breaks_the_schema_is_an_error(
        openai_remote: Remote) -> None:
    openai_remote.fake.push(Reply('{"name": "alice", "likes": "hiking"}'))
    with pytest.raises(StructuredOutputError, match="likes"):
        await openai_remote.provider().structured([Message("user", "Who?")], PERSON,
                                                  max_tokens=50)


async def test_stream_asks_for_usage(openai_remote: Remote) -> None:
    _ = [e async for e in openai_remote.provider().stream([Message("user", "Hi")],
                                                          max_tokens=5)]
    assert openai_remote.fake.bodies[0]["stream_options"] == {"include_usage": True}


async def test_the_fake_streams_tool_calls_as_the_sdk_expects(openai_remote: Remote) -> None:
    # The fake's fidelity, checked with the SDK alone: argument pieces reassemble.
    openai_remote.fake.push(Reply("", tool_calls=[("c1", "search_memory", {"query": "a" * 30})]))
    arguments, name = "", ""
    async with openai.AsyncOpenAI(api_key="x", base_url=openai_remote.fake.url,
                                  max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], stream=True)
        async for chunk in stream:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                assert call.function is not None
                name = name or call.function.name or ""
                arguments += call.function.arguments or ""
    assert name == "search_memory" and json.loads(arguments) == {"query": "a" * 30}
