"""OpenAI chat completions through the official `openai` SDK, for OpenAI itself and any
OpenAI-compatible server (vLLM, Ollama, OpenRouter, Groq, LM Studio ...) via `openai_base_url`.

Structured output: `json_schema` mode sends `response_format={"type": "json_schema"}` (not
strict: OpenAI's strict mode rejects schemas without every property required, and callers'
schemas are arbitrary); `json_object` mode sends `{"type": "json_object"}` with the schema in
the system prompt, for servers without schema support. Answers are repaired and validated
either way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from honcho_grpc.providers.llm.base import (
    Completion,
    LLMError,
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
    tool_arguments,
    with_instruction,
)
from honcho_grpc.settings import LLMSettings

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
          "function_call": "tool_calls", "content_filter": "content_filter"}


class OpenAIProvider:
    def __init__(self, settings: LLMSettings, *, backoff: Backoff | None = None) -> None:
        if not settings.model:
            raise ValueError("llm.model must name a model for the openai provider")
        self.settings = settings
        self.retrier = Retrier(settings, backoff or Backoff(), openai.APIError,
                               openai.APIConnectionError)
        # Self-hosted compatible servers usually need no key, but the SDK insists on one.
        key = (settings.openai_api_key.get_secret_value()
               or os.environ.get("OPENAI_API_KEY") or "none")
        self.client = openai.AsyncOpenAI(api_key=key, base_url=settings.openai_base_url or None,
                                         timeout=settings.timeout_seconds, max_retries=0)

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        body = self._body(as_messages(messages), max_tokens, response_schema, tools)
        limit = timeout or self.settings.timeout_seconds

        async def attempt(model: str) -> Completion:
            with reading_reply():
                async with asyncio.timeout(limit):  # the whole reply, not each read
                    reply: ChatCompletion = await self.client.chat.completions.create(
                        model=model, timeout=limit, **body)
                return _completion(reply, max_tokens)

        return await self.retrier.run(attempt)

    async def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
                     tools: Sequence[ToolSpec] | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109
                    ) -> AsyncGenerator[StreamEvent, None]:
        """Retries cover opening the stream only: deltas already yielded cannot be taken back,
        so a failure mid-stream raises LLMError."""
        body = self._body(as_messages(messages), max_tokens, None, tools)
        limit = timeout or self.settings.timeout_seconds
        response: openai.AsyncStream[Any] = await self.retrier.run(
            lambda model: self.client.chat.completions.create(
                model=model, stream=True, stream_options={"include_usage": True},
                timeout=limit, **body))
        usage, finish, said = Usage(), "", Said(max_tokens)
        calls: dict[int, PartialToolCall] = {}
        try:
            with reading_reply():
                async for chunk in within(response, limit):
                    if chunk.usage:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices or []:
                        if piece := said.take(text_of(choice.delta and choice.delta.content)):
                            yield StreamEvent(text=piece)
                        if choice.delta:
                            _add_fragments(calls, choice.delta.tool_calls)
                        if choice.finish_reason:
                            finish = FINISH.get(choice.finish_reason, choice.finish_reason)
                    if said.full:
                        finish = "length"
                        break
        except (openai.APIError, TimeoutError) as exc:
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

    def _body(self, messages: list[Message], max_tokens: int,
              schema: dict[str, Any] | None, tools: Sequence[ToolSpec] | None) -> dict[str, Any]:
        body: dict[str, Any] = {self._max_tokens_key(): max_tokens}
        if self.settings.reasoning_effort:
            body["reasoning_effort"] = self.settings.reasoning_effort
        if schema is not None and self.settings.structured_output_mode == "json_object":
            messages = with_instruction(messages, schema_instruction(schema))
            body["response_format"] = {"type": "json_object"}
        elif schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name(schema), "schema": schema, "strict": False}}
        if tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools]
        body["messages"] = [wire_message(m) for m in messages]
        return body

    def _max_tokens_key(self) -> str:
        # OpenAI's reasoning models reject `max_tokens`; compatible servers widely know only it.
        return "max_tokens" if self.settings.openai_base_url else "max_completion_tokens"


def wire_message(message: Message) -> dict[str, Any]:
    """A message in the chat-completions wire format."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "",
                "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": json.dumps(c.arguments)}} for c in message.tool_calls]
    return wire


def _completion(reply: ChatCompletion, max_tokens: int) -> Completion:
    if not reply.choices:
        raise LLMError("the provider returned no choices")
    choice = reply.choices[0]
    text, cut = capped(text_of(choice.message.content), max_tokens)
    calls = [ToolCall(c.id, c.function.name, tool_arguments(c.function.arguments))
             for c in choice.message.tool_calls or []
             if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens) if reply.usage \
        else Usage()
    finish = "length" if cut else FINISH.get(choice.finish_reason, choice.finish_reason or "stop")
    return Completion(text, calls, usage, finish)


def _add_fragments(partial: dict[int, PartialToolCall],
                   fragments: list[ChoiceDeltaToolCall] | None) -> None:
    """Stream deltas carry a call by `index`: its id and name first, then argument pieces.
    Name and argument pieces are concatenated, as the SDK's own stream accumulator does; the
    id is kept from the first fragment that has one (ids come whole)."""
    for fragment in fragments or []:
        call = partial.setdefault(fragment.index, PartialToolCall())
        call.id = call.id or fragment.id or ""
        if fragment.function is not None:
            call.name += fragment.function.name or ""
            call.arguments += fragment.function.arguments or ""
