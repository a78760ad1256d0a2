"""The one place that talks to LLM providers: OpenAI (and any OpenAI-compatible base URL:
vLLM, Ollama, OpenRouter, Groq ...) and Anthropic, through their official SDKs.

`local` is not here: the offline heuristics live with their callers (worker/heuristics.py,
domain/dialectic.py) and `build_llm` returns None for it.

Retries are ours (the SDKs' own are switched off): retryable errors (429, 5xx, timeouts,
connection errors) are retried with exponential backoff, and the configured fallback model
takes the last attempt. Closing a `stream()` generator closes the HTTP stream at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from honcho_grpc.settings import LLMSettings

T = TypeVar("T")


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"


@dataclass
class StreamEvent:
    """A text delta, or (last) the usage and finish reason."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str = ""


class LLMProvider(Protocol):
    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: list[dict[str, Any]] | None = None) -> Completion: ...

    def stream(self, messages: list[dict[str, Any]], *,
               max_tokens: int) -> AsyncGenerator[StreamEvent, None]: ...


def _retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    name = type(exc).__name__
    return name in ("APIConnectionError", "APITimeoutError", "TimeoutError")


class _Retrying:
    """Shared retry policy; the fallback model (if any) gets the last attempt."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings

    async def call(self, attempt_fn: Callable[[str], Awaitable[T]]) -> T:
        attempts = max(1, self.settings.max_retries)
        number = 0
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts), wait=wait_exponential(0.5, max=8),
            retry=retry_if_exception(_retryable), reraise=True,
        ):
            with attempt:
                number += 1
                last = number == attempts and bool(self.settings.fallback_model)
                return await attempt_fn(self.settings.fallback_model if last
                                        else self.settings.model)
        raise AssertionError("unreachable")  # pragma: no cover


class OpenAIProvider:
    def __init__(self, settings: LLMSettings) -> None:
        from openai import AsyncOpenAI

        self.settings = settings
        self.retrying = _Retrying(settings)
        # Any: our messages are plain dicts, which the SDK's overloads do not accept as typed.
        self.client: Any = AsyncOpenAI(api_key=settings.openai_api_key or "unset",
                                  base_url=settings.openai_base_url or None,
                                  timeout=settings.timeout_seconds, max_retries=0)

    def _format(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        if self.settings.structured_output_mode == "json_object":
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": False}}

    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: list[dict[str, Any]] | None = None) -> Completion:
        if response_schema is not None and self.settings.structured_output_mode == "json_object":
            messages = [*messages, {"role": "system", "content": "Answer with one JSON object "
                                    "matching this JSON Schema: " + json.dumps(response_schema)}]
        extra: dict[str, Any] = {}
        if (fmt := self._format(response_schema)) is not None:
            extra["response_format"] = fmt
        if tools:
            extra["tools"] = [{"type": "function", "function": t} for t in tools]

        async def attempt(model: str) -> Completion:
            reply: Any = await self.client.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens,
                **extra)
            choice = reply.choices[0]
            calls = [ToolCall(c.id, c.function.name, json.loads(c.function.arguments or "{}"))
                     for c in (choice.message.tool_calls or []) if c.type == "function"]
            usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens) \
                if reply.usage else Usage()
            return Completion(choice.message.content or "", usage, calls,
                              choice.finish_reason or "stop")

        return await self.retrying.call(attempt)

    async def stream(self, messages: list[dict[str, Any]], *,
                     max_tokens: int) -> AsyncGenerator[StreamEvent, None]:
        response: Any = await self.retrying.call(lambda model: self.client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens,
            stream=True, stream_options={"include_usage": True}))
        finish, usage = "stop", Usage()
        try:
            async for chunk in response:
                if chunk.usage:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield StreamEvent(text=choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        finally:
            await response.close()  # a cancelled consumer closes the HTTP stream now
        yield StreamEvent(usage=usage, finish_reason=finish)


class AnthropicProvider:
    def __init__(self, settings: LLMSettings) -> None:
        from anthropic import AsyncAnthropic

        self.settings = settings
        self.retrying = _Retrying(settings)
        self.client: Any = AsyncAnthropic(api_key=settings.anthropic_api_key or "unset",
                                     base_url=settings.anthropic_base_url or None,
                                     timeout=settings.timeout_seconds, max_retries=0)

    @staticmethod
    def _split(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
        rest = [m for m in messages if m["role"] != "system"]
        return system, rest

    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: list[dict[str, Any]] | None = None) -> Completion:
        system, rest = self._split(messages)
        extra: dict[str, Any] = {}
        tool_specs = [{"name": t["name"], "description": t.get("description", ""),
                       "input_schema": t.get("parameters", {"type": "object"})}
                      for t in tools or []]
        if response_schema is not None:
            # Structured output as a forced tool call: its input is the JSON answer.
            tool_specs.append({"name": "answer", "description": "The answer.",
                               "input_schema": response_schema})
            extra["tool_choice"] = {"type": "tool", "name": "answer"}
        if tool_specs:
            extra["tools"] = tool_specs

        async def attempt(model: str) -> Completion:
            reply: Any = await self.client.messages.create(
                model=model, system=system, messages=rest,
                max_tokens=max_tokens, **extra)
            text = "".join(b.text for b in reply.content if b.type == "text")
            calls = [ToolCall(b.id, b.name, dict(b.input)) for b in reply.content
                     if b.type == "tool_use"]
            if response_schema is not None:
                answer = next((c for c in calls if c.name == "answer"), None)
                text = json.dumps(answer.arguments) if answer else text
                calls = [c for c in calls if c.name != "answer"]
            usage = Usage(reply.usage.input_tokens, reply.usage.output_tokens)
            return Completion(text, usage, calls, reply.stop_reason or "stop")

        return await self.retrying.call(attempt)

    async def stream(self, messages: list[dict[str, Any]], *,
                     max_tokens: int) -> AsyncGenerator[StreamEvent, None]:
        system, rest = self._split(messages)
        response: Any = await self.retrying.call(lambda model: self.client.messages.create(
            model=model, system=system, messages=rest,
            max_tokens=max_tokens, stream=True))
        usage, finish = Usage(), "stop"
        try:
            async for event in response:
                if event.type == "message_start":
                    usage.input_tokens = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield StreamEvent(text=event.delta.text)
                elif event.type == "message_delta":
                    usage.output_tokens = event.usage.output_tokens
                    finish = event.delta.stop_reason or finish
        finally:
            await response.close()
        yield StreamEvent(usage=usage, finish_reason=finish)


def build_llm(settings: LLMSettings) -> LLMProvider | None:
    """The configured provider; None for the offline `local` one."""
    if settings.provider == "openai":
        return OpenAIProvider(settings)
    if settings.provider == "anthropic":
        return AnthropicProvider(settings)
    return None


async def collect(stream: AsyncIterator[StreamEvent]) -> tuple[str, StreamEvent]:
    """Join a stream's text; returns it with the final event."""
    parts, last = [], StreamEvent()
    async for event in stream:
        parts.append(event.text)
        last = event
    return "".join(parts), last
