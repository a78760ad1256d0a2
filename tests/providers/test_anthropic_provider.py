"""Anthropic-specific wire format through the official SDK: system as a parameter, tool
turns as tool_use / tool_result blocks, structured output as a forced tool call or via the
prompt with repair."""

from __future__ import annotations

import json

import anthropic
import pytest

from honcho_grpc.providers.llm import Message, StructuredOutputError, ToolCall, ToolSpec
from tests.fakes.script import Failure, Reply
from tests.providers.conftest import Remote

SEARCH = ToolSpec("search_memory", "Search what is known.",
                  {"type": "object", "properties": {"query": {"type": "string"}},
                   "required": ["query"]})
PERSON = {"type": "object", "title": "person",
          "properties": {"name": {"type": "string"}, "likes": {"type": "array",
                                                               "items": {"type": "string"}}},
          "required": ["name", "likes"]}


async def test_system_becomes_a_parameter(anthropic_remote: Remote) -> None:
    await anthropic_remote.provider().complete(
        [Message("system", "Be brief."), Message("user", "Hi")], max_tokens=42)
    body = anthropic_remote.fake.bodies[0]
    assert body["system"] == "Be brief." and body["max_tokens"] == 42
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


async def test_tool_calls_round_trip(anthropic_remote: Remote) -> None:
    fake = anthropic_remote.fake
    fake.push(Reply("Let me look.", tool_calls=[("toolu_1", "search_memory", {"query": "job"})]),
              Reply("Alice is a nurse."))
    provider = anthropic_remote.provider()
    asked = [Message("user", "What does alice do?")]
    first = await provider.complete(asked, max_tokens=50, tools=[SEARCH])
    assert first.tool_calls == [ToolCall("toolu_1", "search_memory", {"query": "job"})]
    assert first.finish_reason == "tool_calls" and first.text == "Let me look."
    assert fake.bodies[0]["tools"] == [{"name": "search_memory",
                                        "description": "Search what is known.",
                                        "input_schema": SEARCH.parameters}]

    turns = [*asked, Message("assistant", first.text, tool_calls=tuple(first.tool_calls)),
             Message("tool", "alice works as a nurse", tool_call_id="toolu_1")]
    second = await provider.complete(turns, max_tokens=50, tools=[SEARCH])
    assert second.text == "Alice is a nurse."
    assert fake.bodies[1]["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "search_memory",
             "input": {"query": "job"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "alice works as a nurse"}]}]


async def test_structured_json_schema_mode_forces_a_tool(anthropic_remote: Remote) -> None:
    anthropic_remote.fake.push(Reply("", tool_calls=[("toolu_9", "person",
                                                      {"name": "alice", "likes": ["hiking"]})]))
    value = await anthropic_remote.provider().structured([Message("user", "Who?")], PERSON,
                                                         max_tokens=50)
    assert value == {"name": "alice", "likes": ["hiking"]}
    body = anthropic_remote.fake.bodies[0]
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    assert body["tools"][0]["name"] == "person" and body["tools"][0]["input_schema"] == PERSON


async def test_forced_answer_is_text_not_a_tool_call(anthropic_remote: Remote) -> None:
    anthropic_remote.fake.push(Reply("", tool_calls=[("toolu_9", "person",
                                                      {"name": "bob", "likes": []})]))
    done = await anthropic_remote.provider().complete([Message("user", "Who?")],
                                                      max_tokens=50, response_schema=PERSON)
    assert json.loads(done.text) == {"name": "bob", "likes": []}
    assert done.tool_calls == [] and done.finish_reason == "stop"


async def test_structured_json_object_mode_repairs_sloppy_json(
        anthropic_remote: Remote) -> None:
    anthropic_remote.fake.push(Reply("{name: 'alice', likes: ['hiking'], /* ok */} Done!"))
    provider = anthropic_remote.provider(structured_output_mode="json_object")
    value = await provider.structured([Message("user", "Who?")], PERSON, max_tokens=50)
    assert value == {"name": "alice", "likes": ["hiking"]}
    body = anthropic_remote.fake.bodies[0]
    assert json.dumps(PERSON) in body["system"] and "tools" not in body


async def test_invalid_structured_output_is_an_error(anthropic_remote: Remote) -> None:
    anthropic_remote.fake.push(Reply("I cannot answer that."))
    provider = anthropic_remote.provider(structured_output_mode="json_object")
    with pytest.raises(StructuredOutputError):
        await provider.structured([Message("user", "Who?")], PERSON, max_tokens=50)


async def test_overloaded_is_retried(anthropic_remote: Remote) -> None:
    anthropic_remote.fake.push(Failure(529, "Overloaded"), Reply("ok"))
    done = await anthropic_remote.provider(max_retries=1).complete([Message("user", "Hi")],
                                                                   max_tokens=5)
    assert done.text == "ok"


async def test_the_fake_streams_tool_use_as_the_sdk_expects(anthropic_remote: Remote) -> None:
    # The fake's fidelity, checked with the SDK's own stream accumulator.
    anthropic_remote.fake.push(Reply("Looking.", tool_calls=[("toolu_1", "search_memory",
                                                              {"query": "a" * 30})]))
    async with anthropic.AsyncAnthropic(api_key="x", base_url=anthropic_remote.fake.url,
                                        max_retries=0) as client, \
            client.messages.stream(model="m", max_tokens=50,
                                   messages=[{"role": "user", "content": "Hi"}]) as stream:
        final = await stream.get_final_message()
    text, tool = final.content
    assert text.type == "text" and text.text == "Looking."
    assert tool.type == "tool_use" and tool.input == {"query": "a" * 30}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 7
