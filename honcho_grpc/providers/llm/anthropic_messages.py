"""Anthropic Messages through the official `anthropic` SDK (`anthropic_base_url` for proxies
and compatible gateways).

System turns become the `system` parameter; tool results become `tool_result` blocks in a
user turn; consecutive turns of one role are merged, as the API wants them alternating.
Structured output: `json_schema` mode forces a call of a tool whose input schema is the
requested schema (the tool's input is the answer); `json_object` mode puts the schema in the
system prompt. Answers are repaired and validated either way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anthropic
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    TextBlock,
    TextDelta,
    ToolUseBlock,
)
from anthropic.types import (
    Message as AnthropicMessage,
)

from honcho_grpc.providers.llm.base import (
    Completion,
    Message,
    MessageLike,
    Said,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
    as_messages,
    capped,
    reading_reply,
    text_of,
    within,
)
from honcho_grpc.providers.llm.retry import Backoff, Retrier
from honcho_grpc.providers.llm.structured import (
    PartialToolCall,
    assemble_tool_calls,
    parse_structured,
    schema_instruction,
    schema_name,
    with_instruction,
)
from honcho_grpc.providers.llm.tasks import thinking_budget
from honcho_grpc.settings import LLMSettings

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
          "max_tokens": "length", "model_context_window_exceeded": "length",
          "tool_use": "tool_calls", "refusal": "content_filter"}


class AnthropicProvider:
    def __init__(self, settings: LLMSettings, *, backoff: Backoff | None = None) -> None:
        if not settings.model:
            raise ValueError("llm.model must name a model for the anthropic provider")
        self.settings = settings
        self.retrier = Retrier(settings, backoff or Backoff(), anthropic.APIError,
                               anthropic.APIConnectionError)
        key = (settings.anthropic_api_key.get_secret_value()
               or os.environ.get("ANTHROPIC_API_KEY") or "none")
        self.client = anthropic.AsyncAnthropic(
            api_key=key, base_url=settings.anthropic_base_url or None,
            timeout=settings.timeout_seconds, max_retries=0)

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        msgs = as_messages(messages)
        body: dict[str, Any] = {"max_tokens": max_tokens}
        specs = wire_tools(tools)
        answer_tool = ""
        thinking = 0 if tools else thinking_budget(self.settings.reasoning_effort)
        if thinking:
            # Thinking counts against max_tokens; a forced tool is refused with it, so a
            # structured answer is asked for in the prompt (and repaired, validated).
            body = {"max_tokens": max_tokens + thinking,
                    "thinking": {"type": "enabled", "budget_tokens": thinking}}
        if response_schema is not None and (
                thinking or self.settings.structured_output_mode == "json_object"):
            msgs = with_instruction(msgs, schema_instruction(response_schema))
        elif response_schema is not None:
            # The answer is a tool of its own. Alone it is forced; beside lookup tools the
            # model must call one of them: a lookup, or the answer when it has enough.
            answer_tool = schema_name(response_schema)
            specs.append({"name": answer_tool, "input_schema": response_schema,
                          "description": "Give the answer as this tool's input."})
            body["tool_choice"] = {"type": "any"} if tools else \
                {"type": "tool", "name": answer_tool}
        if specs:
            body["tools"] = specs
        body.update(wire_conversation(msgs))

        limit = timeout or self.settings.timeout_seconds

        async def attempt(model: str) -> Completion:
            with reading_reply():
                async with asyncio.timeout(limit):  # the whole reply, not each read
                    reply: AnthropicMessage = await self.client.messages.create(
                        model=model, timeout=limit, **body)
                return _completion(reply, answer_tool, max_tokens)

        return await self.retrier.run(attempt)

    async def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
                     tools: Sequence[ToolSpec] | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109
                    ) -> AsyncGenerator[StreamEvent, None]:
        """Retries cover opening the stream only: deltas already yielded cannot be taken back,
        so a failure mid-stream raises LLMError."""
        body = {"max_tokens": max_tokens, **wire_conversation(as_messages(messages))}
        thinking = 0 if tools else thinking_budget(self.settings.reasoning_effort)
        if thinking:
            body["max_tokens"] = max_tokens + thinking
            body["thinking"] = {"type": "enabled", "budget_tokens": thinking}
        if tools:
            body["tools"] = wire_tools(tools)
        limit = timeout or self.settings.timeout_seconds
        response: anthropic.AsyncStream[Any] = await self.retrier.run(
            lambda model: self.client.messages.create(model=model, stream=True, timeout=limit,
                                                      **body))
        usage, finish, said = Usage(), "", Said(max_tokens)
        calls: dict[int, PartialToolCall] = {}
        try:
            with reading_reply():
                async for event in within(response, limit):
                    if isinstance(event, RawMessageStartEvent):
                        usage = Usage(_input_tokens(event.message.usage), usage.output_tokens)
                    elif isinstance(event, RawContentBlockDeltaEvent) \
                            and isinstance(event.delta, TextDelta):
                        if piece := said.take(text_of(event.delta.text)):
                            yield StreamEvent(text=piece)
                        if said.full:
                            finish = "length"
                            break
                    elif isinstance(event, RawMessageDeltaEvent):
                        usage = Usage(usage.input_tokens, event.usage.output_tokens)
                        stop = event.delta.stop_reason
                        finish = FINISH.get(stop, stop) if stop else finish
                    else:
                        _add_tool_piece(calls, event)
        except (anthropic.APIError, TimeoutError) as exc:
            raise self.retrier.error(exc) from exc
        finally:
            await response.close()  # closing (or cancelling) the consumer drops the connection
        yield said.last_event(usage, finish, assemble_tool_calls(calls))

    async def aclose(self) -> None:
        """Close the SDK's connection pool."""
        await self.client.close()

    async def structured(self, messages: Sequence[MessageLike], schema: dict[str, Any], *,
                         max_tokens: int,
                         timeout: float | None = None,  # noqa: ASYNC109
                        ) -> dict[str, Any]:
        done = await self.complete(messages, max_tokens=max_tokens, response_schema=schema,
                                   timeout=timeout)
        return parse_structured(done.text, schema)


def wire_tools(tools: Sequence[ToolSpec] | None) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools or []]


def _add_tool_piece(calls: dict[int, PartialToolCall], event: Any) -> None:
    """A tool_use block opens with the call's id and name (its `input` is empty then); the
    input follows as pieces of JSON text, by block index."""
    if isinstance(event, RawContentBlockStartEvent) \
            and isinstance(event.content_block, ToolUseBlock):
        calls[event.index] = PartialToolCall(event.content_block.id, event.content_block.name)
    elif isinstance(event, RawContentBlockDeltaEvent) \
            and isinstance(event.delta, InputJSONDelta) and event.index in calls:
        calls[event.index].arguments += event.delta.partial_json


def wire_conversation(messages: list[Message]) -> dict[str, Any]:
    """`system` and `messages` parameters for the Messages API."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return {"system": system, "messages": turns} if system else {"messages": turns}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                 "content": message.content}]
    # The API rejects empty text blocks (an assistant turn may be only tool calls).
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] \
        if message.content else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
               for c in message.tool_calls]
    return blocks


def _completion(reply: AnthropicMessage, answer_tool: str, max_tokens: int) -> Completion:
    text, cut = capped("".join(text_of(b.text) for b in reply.content
                               if isinstance(b, TextBlock)), max_tokens)
    calls = [ToolCall(b.id, b.name, dict(b.input)) for b in reply.content
             if isinstance(b, ToolUseBlock)]
    finish = "length" if cut else \
        FINISH.get(reply.stop_reason or "end_turn", reply.stop_reason or "stop")
    answer = next((c for c in calls if c.name == answer_tool), None) if answer_tool else None
    if answer is not None:
        # The answer tool's call is the structured answer, not a call for the caller to run;
        # cut at max_tokens it is incomplete, whatever the SDK made of the partial input.
        # Lookups asked beside it are moot: the model has answered.
        text, finish = json.dumps(answer.arguments), "length" if finish == "length" else "stop"
        calls = []
    return Completion(text, calls, Usage(_input_tokens(reply.usage), reply.usage.output_tokens),
                      finish)


def _input_tokens(usage: Any) -> int:
    """All input tokens: prompt-cache reads and writes are billed input too."""
    return sum(int(getattr(usage, name, 0) or 0) for name in (
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
